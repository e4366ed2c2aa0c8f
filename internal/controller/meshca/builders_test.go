package meshca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Test builders: makeCSR("mesh-1").Requester("alice").Obj(),
// makePod("web-1").Node("b").Obj() and so on. The world they describe by
// default: node a runs pod default/web-1 (uid uid-web-1) of service account
// default/web, whose proxy asks for spiffe://cluster.local/ns/default/sa/web
// with the token "token-web-1".

const (
	testDomain = "cluster.local"
	testToken  = "token-web-1"
)

// keys made once: RSA keys are slow to make.
var (
	p256Key    = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	p384Key    = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	p224Key    = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader)) })
	rsa2048Key = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsa1024Key = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 1024)) })
	ed25519Key = sync.OnceValue(func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return must(k, err)
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// requestBuilder makes spec.request: by default a P-256 request for the
// SPIFFE ID of default/web.
type requestBuilder struct {
	key  crypto.Signer
	tmpl x509.CertificateRequest
}

func makeRequest() *requestBuilder {
	return (&requestBuilder{key: p256Key()}).URI(SPIFFEID(testDomain, "default", "web"))
}

// URI sets the URI SANs (none: no URI SAN).
func (b *requestBuilder) URI(uris ...string) *requestBuilder {
	b.tmpl.URIs = nil
	for _, u := range uris {
		b.tmpl.URIs = append(b.tmpl.URIs, must(url.Parse(u)))
	}
	return b
}
func (b *requestBuilder) DNS(names ...string) *requestBuilder {
	b.tmpl.DNSNames = names
	return b
}
func (b *requestBuilder) IP(ips ...string) *requestBuilder {
	for _, ip := range ips {
		b.tmpl.IPAddresses = append(b.tmpl.IPAddresses, net.ParseIP(ip))
	}
	return b
}
func (b *requestBuilder) Email(addrs ...string) *requestBuilder {
	b.tmpl.EmailAddresses = addrs
	return b
}
func (b *requestBuilder) Key(k crypto.Signer) *requestBuilder {
	b.key = k
	return b
}
func (b *requestBuilder) DER() []byte {
	return must(x509.CreateCertificateRequest(rand.Reader, &b.tmpl, b.key))
}
func (b *requestBuilder) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: b.DER()})
}

// Tampered is the request with a byte of its signature changed.
func (b *requestBuilder) Tampered() []byte {
	der := b.DER()
	der[len(der)-1] ^= 0xff
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

type csrBuilder struct {
	c *certificatesv1.CertificateSigningRequest
}

// makeCSR is node a's request for default/web's certificate, as a node
// proxy makes it, pending.
func makeCSR(name string) *csrBuilder {
	return &csrBuilder{&certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{TokenAnnotation: testToken},
			Labels:      map[string]string{NodeLabel: "a", NamespaceLabel: "default", ServiceAccountLabel: "web"},
		},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			SignerName: SignerName,
			Request:    makeRequest().PEM(),
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment,
				certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth},
			Username: "system:node:a",
			Groups:   []string{"system:nodes", "system:authenticated"},
		},
	}}
}

func (b *csrBuilder) Requester(user string, groups ...string) *csrBuilder {
	b.c.Spec.Username, b.c.Spec.Groups = user, groups
	return b
}
func (b *csrBuilder) Request(pemData []byte) *csrBuilder {
	b.c.Spec.Request = pemData
	return b
}
func (b *csrBuilder) Usages(u ...certificatesv1.KeyUsage) *csrBuilder {
	b.c.Spec.Usages = u
	return b
}
func (b *csrBuilder) Token(tok string) *csrBuilder {
	b.c.Annotations[TokenAnnotation] = tok
	return b
}
func (b *csrBuilder) Signer(name string) *csrBuilder {
	b.c.Spec.SignerName = name
	return b
}
func (b *csrBuilder) ExpirationSeconds(s int32) *csrBuilder {
	b.c.Spec.ExpirationSeconds = &s
	return b
}
func (b *csrBuilder) Condition(t certificatesv1.RequestConditionType) *csrBuilder {
	b.c.Status.Conditions = append(b.c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: t, Status: corev1.ConditionTrue, Reason: "Test",
	})
	return b
}
func (b *csrBuilder) Certificate(c []byte) *csrBuilder {
	b.c.Status.Certificate = c
	return b
}
func (b *csrBuilder) Obj() *certificatesv1.CertificateSigningRequest { return b.c }

// reviewOf is an authenticated review of a token of user, for Audience,
// bound to pod podName with uid podUID (both empty: to no pod).
func reviewOf(user, podName, podUID string) *authenticationv1.TokenReviewStatus {
	st := &authenticationv1.TokenReviewStatus{
		Authenticated: true,
		Audiences:     []string{Audience},
		User:          authenticationv1.UserInfo{Username: user, Extra: map[string]authenticationv1.ExtraValue{}},
	}
	if podName != "" {
		st.User.Extra[podNameKey] = authenticationv1.ExtraValue{podName}
	}
	if podUID != "" {
		st.User.Extra[podUIDKey] = authenticationv1.ExtraValue{podUID}
	}
	return st
}

// webReview is the review of testToken.
func webReview() *authenticationv1.TokenReviewStatus {
	return reviewOf("system:serviceaccount:default:web", "web-1", "uid-web-1")
}

type podBuilder struct{ p *corev1.Pod }

// makePod is a running pod in namespace default of service account web on
// node a, with uid "uid-NAME".
func makePod(name string) *podBuilder {
	return &podBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: "a", ServiceAccountName: "web"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}}
}

func (b *podBuilder) Node(n string) *podBuilder {
	b.p.Spec.NodeName = n
	return b
}
func (b *podBuilder) SA(sa string) *podBuilder {
	b.p.Spec.ServiceAccountName = sa
	return b
}
func (b *podBuilder) UID(uid string) *podBuilder {
	b.p.UID = types.UID(uid)
	return b
}
func (b *podBuilder) Phase(p corev1.PodPhase) *podBuilder {
	b.p.Status.Phase = p
	return b
}
func (b *podBuilder) Obj() *corev1.Pod { return b.p }
