package meshca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The identities and token claims the decision reads.
const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
	// The service-account authenticator's extra keys of a token bound to
	// a pod (k8s.io/apiserver/pkg/authentication/serviceaccount).
	podNameKey = "authentication.kubernetes.io/pod-name"
	podUIDKey  = "authentication.kubernetes.io/pod-uid"
)

// The refusal reasons, the values of the reason label of
// skiff_mesh_ca_certificates_refused_total.
const (
	// reasonRequester: the requester is not a node.
	reasonRequester = "requester"
	// reasonRequest: the x509 request (signature, SANs, key, usages).
	reasonRequest = "request"
	// reasonToken: no token, or one that does not prove the identity.
	reasonToken = "token"
	// reasonPod: the token's pod is gone, replaced, done, or not on the
	// requesting node.
	reasonPod = "pod"
)

var reasons = []string{reasonRequester, reasonRequest, reasonToken, reasonPod}

// usages are the key usages a request may ask for (the certificate has them all).
var usages = []certificatesv1.KeyUsage{
	certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment,
	certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth,
}

// Identity is the workload a request asks a certificate for.
type Identity struct {
	// Node is the requesting node.
	Node string
	// Namespace and ServiceAccount are the SPIFFE ID's service account.
	Namespace, ServiceAccount string
	// ID is the SPIFFE ID, the request's only URI SAN.
	ID *url.URL
}

// refusal says why a request is refused: reason is one of the refusal
// reasons, message what failed, for the Denied condition and the Event.
type refusal struct{ reason, message string }

func (r *refusal) Error() string { return r.message }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, message: fmt.Sprintf(format, args...)}
}

// evidence is what the decision on a request rests on: the request and
// what the shell fetched for it so far.
type evidence struct {
	csr *certificatesv1.CertificateSigningRequest
	// review is the TokenReview of the request's token (nil: not yet).
	review *authenticationv1.TokenReviewStatus
	// pod is the pod the token is bound to; podMissing is set when it
	// was looked up and does not exist (both unset: not looked up yet).
	pod        *corev1.Pod
	podMissing bool
}

// need is what decide needs before it can decide.
type need int

const (
	needNothing need = iota
	// needReview: a TokenReview of the token, audience Audience.
	needReview
	// needPod: the pod podName in id.Namespace.
	needPod
)

// decision is decide's answer: either what to fetch next, or the verdict
// (refused set: refuse; else issue a certificate for id with request's key).
type decision struct {
	next    need
	podName string
	id      Identity
	request *x509.CertificateRequest
	refused *refusal
}

// decide checks a request of SignerName against the evidence, in order:
// the requester, the x509 request, the token's review, the pod. It asks
// for the review and then the pod when it has got that far without them.
func decide(trustDomain string, ev evidence) decision {
	id, req, r := checkRequest(trustDomain, ev.csr)
	if r != nil {
		return decision{id: id, refused: r}
	}
	d := decision{id: id, request: req}
	if ev.review == nil {
		d.next = needReview
		return d
	}
	name, uid, r := checkReview(id, *ev.review)
	if r != nil {
		d.refused = r
		return d
	}
	if ev.pod == nil && !ev.podMissing {
		d.next, d.podName = needPod, name
		return d
	}
	d.refused = checkPod(id, name, uid, ev.pod)
	return d
}

// checkRequest checks who asks (a node) and what for (one SPIFFE ID in
// trustDomain, a good key), and that the request carries a token.
func checkRequest(trustDomain string, csr *certificatesv1.CertificateSigningRequest) (Identity, *x509.CertificateRequest, *refusal) {
	var id Identity
	node, isNode := strings.CutPrefix(csr.Spec.Username, nodeUserPrefix)
	if !isNode || node == "" || !slices.Contains(csr.Spec.Groups, nodesGroup) {
		return id, nil, refuse(reasonRequester, "requester %q is not a node: only system:node:NAME in the group %s may request mesh certificates", csr.Spec.Username, nodesGroup)
	}
	id.Node = node
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return id, nil, refuse(reasonRequest, "spec.request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return id, nil, refuse(reasonRequest, "spec.request does not parse: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return id, nil, refuse(reasonRequest, "spec.request is not signed by its key: %v", err)
	}
	if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 || len(req.EmailAddresses) > 0 || len(req.URIs) != 1 {
		return id, nil, refuse(reasonRequest, "the request names %d URI, %d DNS, %d IP and %d email SANs: it must name exactly one URI SAN, the SPIFFE ID, and nothing else",
			len(req.URIs), len(req.DNSNames), len(req.IPAddresses), len(req.EmailAddresses))
	}
	td, ns, sa, err := ParseSPIFFEID(req.URIs[0])
	if err != nil {
		return id, nil, refuse(reasonRequest, "%v", err)
	}
	if td != trustDomain {
		return id, nil, refuse(reasonRequest, "the SPIFFE ID %s is not of the trust domain %s", req.URIs[0], trustDomain)
	}
	id.Namespace, id.ServiceAccount, id.ID = ns, sa, req.URIs[0]
	if err := checkKey(req.PublicKey); err != nil {
		return id, nil, refuse(reasonRequest, "%v", err)
	}
	for _, u := range csr.Spec.Usages {
		if !slices.Contains(usages, u) {
			return id, nil, refuse(reasonRequest, "usage %q is not one of %v", u, usages)
		}
	}
	if csr.Annotations[TokenAnnotation] == "" {
		return id, nil, refuse(reasonToken, "no service-account token in the annotation %s", TokenAnnotation)
	}
	return id, req, nil
}

// checkKey accepts ECDSA P-256 and P-384 keys and RSA keys of 2048 bits or more.
func checkKey(key any) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("the ECDSA key's curve %s is not P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the RSA key has %d bits, fewer than 2048", k.N.BitLen())
		}
	default:
		return fmt.Errorf("the key is a %T: only ECDSA P-256 or P-384 and RSA keys of 2048 bits or more are signed", key)
	}
	return nil
}

// checkReview checks that the token proves id's service account and names
// the pod it is bound to, whose name and uid it returns. The pod's node is
// checked on the pod itself (checkPod), not on the token's extra.
func checkReview(id Identity, st authenticationv1.TokenReviewStatus) (podName string, podUID types.UID, r *refusal) {
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "no reason given"
		}
		return "", "", refuse(reasonToken, "the service-account token is not authenticated: %s", why)
	}
	if !slices.Contains(st.Audiences, Audience) {
		return "", "", refuse(reasonToken, "the token's audiences %v do not include %s", st.Audiences, Audience)
	}
	want := "system:serviceaccount:" + id.Namespace + ":" + id.ServiceAccount
	if st.User.Username != want {
		return "", "", refuse(reasonToken, "the token is %s's, not %s's, the service account of %s", st.User.Username, want, id.ID)
	}
	name, uid := only(st.User.Extra[podNameKey]), only(st.User.Extra[podUIDKey])
	if name == "" || uid == "" {
		return "", "", refuse(reasonToken, "the token of %s is not bound to a pod", want)
	}
	return name, types.UID(uid), nil
}

// only is the single value of an extra, or "".
func only(v authenticationv1.ExtraValue) string {
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// checkPod checks that the pod the token is bound to (nil: there is none)
// is that very pod, runs as id's service account on id's node, and has
// not terminated.
func checkPod(id Identity, name string, uid types.UID, pod *corev1.Pod) *refusal {
	ref := id.Namespace + "/" + name
	if pod == nil {
		return refuse(reasonPod, "pod %s does not exist", ref)
	}
	if pod.UID != uid {
		return refuse(reasonPod, "pod %s has uid %s, not the token's %s: the token's pod was replaced", ref, pod.UID, uid)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	if sa != id.ServiceAccount {
		return refuse(reasonPod, "pod %s runs as service account %s, not %s", ref, sa, id.ServiceAccount)
	}
	switch pod.Spec.NodeName {
	case id.Node:
	case "":
		return refuse(reasonPod, "pod %s is not scheduled, not on node %s", ref, id.Node)
	default:
		return refuse(reasonPod, "pod %s runs on node %s, not on node %s", ref, pod.Spec.NodeName, id.Node)
	}
	if p := pod.Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
		return refuse(reasonPod, "pod %s has terminated (phase %s)", ref, p)
	}
	return nil
}

// Certificate lifetimes: spec.expirationSeconds within these bounds.
const (
	minValidity = 10 * time.Minute
	maxValidity = 24 * time.Hour
	// backdate is how long before its signing a certificate is valid, for
	// clocks a little behind.
	backdate = time.Minute
)

// validity is how long a certificate for a request asking for
// expirationSeconds (nil: nothing asked) is valid.
func validity(expirationSeconds *int32) time.Duration {
	if expirationSeconds == nil {
		return maxValidity
	}
	return min(max(time.Duration(*expirationSeconds)*time.Second, minValidity), maxValidity)
}

// leafTemplate is the certificate of id, signed at now, valid for the
// validity asked for but never past caNotAfter.
func leafTemplate(id *url.URL, serial *big.Int, now time.Time, expirationSeconds *int32, caNotAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial,
		URIs:                  []*url.URL{id},
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(validity(expirationSeconds)), caNotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
