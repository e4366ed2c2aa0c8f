package mesh

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/controller/meshca"
)

// certLifetime is what the proxy asks the mesh CA for; it renews at half
// of it, so a CA that stays unreachable for hours shows in events and
// metrics long before a certificate expires.
const certLifetime = 24 * time.Hour

// issueTimeout bounds one certificate request.
const issueTimeout = 30 * time.Second

// identities holds the certificates of the identities of this node's
// enrolled pods, obtained from the mesh CA with the node's credentials.
type identities struct {
	client      kubernetes.Interface
	node        string
	trustDomain string
	clock       clock.Clock
	metrics     *metrics
	log         *slog.Logger

	mu sync.Mutex // guards the fields below
	// certs holds one entry per identity wanted or held.
	certs map[Identity]*idCert
	// roots are the mesh CA certificates seen in issued chains.
	roots *x509.CertPool
}

// idCert is one identity's certificate, or why it has none.
type idCert struct {
	cert     *tls.Certificate // nil until issued
	notAfter time.Time
	renewAt  time.Time
	err      error
	// issued is closed when the first attempt ends (certificate or error).
	issued chan struct{}
	once   sync.Once
}

func newIdentities(client kubernetes.Interface, node, trustDomain string, clk clock.Clock, m *metrics, log *slog.Logger) *identities {
	return &identities{client: client, node: node, trustDomain: trustDomain, clock: clk, metrics: m, log: log,
		certs: map[Identity]*idCert{}, roots: x509.NewCertPool()}
}

// Get is id's certificate and the mesh's roots, waiting up to wait for a
// first issue.
func (s *identities) Get(ctx context.Context, id Identity, wait time.Duration) (*tls.Certificate, *x509.CertPool, error) {
	s.mu.Lock()
	c := s.certs[id]
	s.mu.Unlock()
	if c == nil {
		return nil, nil, fmt.Errorf("no enrolled pod of %s on this node", id)
	}
	t := s.clock.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.issued:
	case <-t.C():
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.cert == nil || !s.clock.Now().Before(c.notAfter) {
		if c.err != nil {
			return nil, nil, fmt.Errorf("certificate of %s: %w", id, c.err)
		}
		return nil, nil, fmt.Errorf("certificate of %s: not issued yet", id)
	}
	return c.cert, s.roots, nil
}

// Roots are the mesh CA certificates known so far.
func (s *identities) Roots() *x509.CertPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roots
}

// Sync makes the wanted identities (each with one of its pods on this
// node, whose token proves it) hold valid certificates, renewing those
// past half their life, and forgets the others.
func (s *identities) Sync(ctx context.Context, want map[Identity]*corev1.Pod) {
	now := s.clock.Now()
	var due []Identity
	s.mu.Lock()
	for id := range s.certs {
		if want[id] == nil {
			delete(s.certs, id)
		}
	}
	for id := range want {
		c := s.certs[id]
		if c == nil {
			c = &idCert{issued: make(chan struct{})}
			s.certs[id] = c
		}
		if c.cert == nil || !now.Before(c.renewAt) {
			due = append(due, id)
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		if ctx.Err() != nil {
			return
		}
		cert, chain, err := s.issue(ctx, id, want[id])
		s.mu.Lock()
		c := s.certs[id]
		if c == nil {
			s.mu.Unlock()
			continue
		}
		if err != nil {
			c.err = err
			// Try again in a while; a held certificate stays in use.
			c.renewAt = now.Add(10 * time.Second)
			s.metrics.certRequests.WithLabelValues("error").Inc()
			s.log.Warn("mesh certificate", "identity", id, "err", err)
		} else {
			leaf := chain[0]
			c.cert, c.err = cert, nil
			c.notAfter = leaf.NotAfter
			c.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
			s.roots.AddCert(chain[len(chain)-1])
			s.metrics.certRequests.WithLabelValues("issued").Inc()
			s.metrics.certExpiry.WithLabelValues(id.Namespace, id.ServiceAccount).Set(float64(leaf.NotAfter.Unix()))
		}
		c.once.Do(func() { close(c.issued) })
		s.mu.Unlock()
		if err != nil {
			s.event(ctx, want[id], err)
		}
	}
	s.metrics.certificates.Set(float64(s.count()))
}

func (s *identities) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.certs {
		if c.cert != nil {
			n++
		}
	}
	return n
}

// issue asks the mesh CA for id's certificate: a key made here, a CSR with
// the SPIFFE ID, and a short-lived token of id bound to pod, which only a
// node that runs pod may request.
func (s *identities) issue(ctx context.Context, id Identity, pod *corev1.Pod) (*tls.Certificate, []*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, issueTimeout)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	spiffe, err := url.Parse(meshca.SPIFFEID(s.trustDomain, id.Namespace, id.ServiceAccount))
	if err != nil {
		return nil, nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{spiffe}}, key)
	if err != nil {
		return nil, nil, err
	}
	expiry := int64(600)
	tr, err := s.client.CoreV1().ServiceAccounts(id.Namespace).CreateToken(ctx, id.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{meshca.Audience},
			ExpirationSeconds: &expiry,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("token of %s bound to pod %s: %w", id, pod.Name, err)
	}
	seconds := int32(certLifetime / time.Second)
	csr, err := s.client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "mesh-",
			Annotations:  map[string]string{meshca.TokenAnnotation: tr.Status.Token},
			Labels:       map[string]string{meshca.NodeLabel: s.node, meshca.NamespaceLabel: id.Namespace, meshca.ServiceAccountLabel: id.ServiceAccount},
		},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
			SignerName:        meshca.SignerName,
			ExpirationSeconds: &seconds,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment,
				certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create CertificateSigningRequest for %s: %w", id, err)
	}
	var issued []byte
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := s.client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
				return false, fmt.Errorf("CertificateSigningRequest %s %s: %s", csr.Name, c.Type, c.Message)
			}
		}
		issued = got.Status.Certificate
		return len(issued) > 0, nil
	})
	if err != nil {
		return nil, nil, err
	}
	chain, err := certutil.ParseCertsPEM(issued)
	if err != nil {
		return nil, nil, fmt.Errorf("CertificateSigningRequest %s: %w", csr.Name, err)
	}
	if len(chain) < 2 {
		return nil, nil, fmt.Errorf("CertificateSigningRequest %s: want the certificate and the mesh CA, got %d certificates", csr.Name, len(chain))
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain[:len(chain)-1] {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if !chain[0].PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		return nil, nil, errors.New("issued certificate is not for the key requested")
	}
	return cert, chain, nil
}

// event reports a certificate that could not be issued on the pod.
func (s *identities) event(ctx context.Context, pod *corev1.Pod, err error) {
	now := metav1.NewTime(s.clock.Now())
	_, _ = s.client.CoreV1().Events(pod.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "MeshCertificateFailed",
		Message:        err.Error(),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "skiff-mesh", Host: s.node},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "skiff.dev/mesh", ReportingInstance: s.node,
	}, metav1.CreateOptions{})
}
