package meshca

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	certutil "k8s.io/client-go/util/cert"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiffdev/skiff/internal/pki"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testCA is the mesh CA of every test, made once.
var testCA = func() func(t *testing.T) *pki.CA {
	var ca *pki.CA
	return func(t *testing.T) *pki.CA {
		t.Helper()
		if ca == nil {
			var err error
			if ca, err = pki.EnsureNamedCA(t.TempDir(), "skiff-mesh-ca"); err != nil {
				t.Fatal(err)
			}
		}
		return ca
	}
}()

var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// harness is a controller over a fake clientset holding objs, whose
// TokenReviews answer reviews (by token; another token is not
// authenticated), with a reconciler over a synced informer.
type harness struct {
	c       *Controller
	r       *reconciler
	client  *fake.Clientset
	events  *record.FakeRecorder
	reviews map[string]*authenticationv1.TokenReviewStatus
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := newController(t, objs...)
	ctx, cancel := context.WithCancel(context.Background())
	r, stop, err := h.c.start(ctx, h.events)
	t.Cleanup(func() { cancel(); stop() })
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	return h
}

// newController is a harness without its reconciler (and informer).
func newController(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{
		client:  fake.NewClientset(objs...),
		events:  record.NewFakeRecorder(100),
		reviews: map[string]*authenticationv1.TokenReviewStatus{testToken: webReview()},
	}
	h.client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if !slices.Equal(tr.Spec.Audiences, []string{Audience}) {
			t.Errorf("TokenReview for audiences %v, want [%s]", tr.Spec.Audiences, Audience)
		}
		if st, ok := h.reviews[tr.Spec.Token]; ok {
			tr.Status = *st
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	var err error
	h.c, err = New(Config{
		Client:     h.client,
		CA:         testCA(t),
		Registerer: prometheus.NewPedanticRegistry(),
		Recorder:   h.events,
		Log:        quiet,
		Clock:      clocktesting.NewFakePassiveClock(testNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// calls lists the calls made other than the informer's, as "verb
// resource[/subresource]".
func (h *harness) calls() []string {
	var out []string
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		r := a.GetResource().Resource
		if s := a.GetSubresource(); s != "" {
			r += "/" + s
		}
		out = append(out, a.GetVerb()+" "+r)
	}
	return out
}

func (h *harness) csr(t *testing.T, name string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	csr, err := h.client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// settle waits until the informer's cache holds what the API holds of
// request name: a reconcile started by the watch event of a write sees it.
func (h *harness) settle(t *testing.T, name string) {
	t.Helper()
	want := h.csr(t, name).Status // the fake API keeps no resourceVersion
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		cached, err := h.r.csrs.Get(name)
		return err == nil && equality.Semantic.DeepEqual(cached.Status, want), nil
	})
	if err != nil {
		t.Fatalf("the cache did not catch up with CertificateSigningRequest %s: %v", name, err)
	}
}

// eventsRecorded drains the recorded events.
func (h *harness) eventsRecorded() []string {
	var out []string
	for {
		select {
		case e := <-h.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func condition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i, c := range csr.Status.Conditions {
		if c.Type == t {
			return &csr.Status.Conditions[i]
		}
	}
	return nil
}

func TestIssue(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, makeCSR("mesh-1").ExpirationSeconds(3600).Obj(), makePod("web-1").Obj())
	if err := h.r.sync(ctx, "mesh-1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"create tokenreviews", "get pods", "update certificatesigningrequests/approval", "update certificatesigningrequests/status"}
	if got := h.calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	csr := h.csr(t, "mesh-1")
	approved := condition(csr, certificatesv1.CertificateApproved)
	if approved == nil || approved.Status != corev1.ConditionTrue || approved.Reason != ReasonVerified {
		t.Errorf("Approved condition %+v, want reason %s", approved, ReasonVerified)
	}
	certs, err := certutil.ParseCertsPEM(csr.Status.Certificate)
	if err != nil || len(certs) != 2 {
		t.Fatalf("status.certificate holds %d certificates (err %v), want the leaf and the CA", len(certs), err)
	}
	leaf, anchor := certs[0], certs[len(certs)-1]
	ca := testCA(t)
	if !anchor.Equal(ca.Cert) {
		t.Error("the last certificate is not the mesh CA's")
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("the leaf does not verify for %v: %v", usage, err)
		}
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/web" ||
		len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) > 0 {
		t.Errorf("leaf SANs: URIs %v, DNS %v, IPs %v, emails %v", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if !leaf.NotBefore.Equal(testNow.Add(-time.Minute)) || !leaf.NotAfter.Equal(testNow.Add(time.Hour)) {
		t.Errorf("leaf valid %v to %v, want a minute before %v for an hour", leaf.NotBefore, leaf.NotAfter, testNow)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
		t.Errorf("leaf IsCA %t, key usage %v, ext key usage %v", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if leaf.SerialNumber.BitLen() != 128 {
		t.Errorf("serial of %d bits, want 128", leaf.SerialNumber.BitLen())
	}
	if len(leaf.AuthorityKeyId) == 0 || string(leaf.AuthorityKeyId) != string(ca.Cert.SubjectKeyId) {
		t.Errorf("AuthorityKeyId %x, want the CA's %x", leaf.AuthorityKeyId, ca.Cert.SubjectKeyId)
	}
	if !p256Key().Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
		t.Error("the leaf's key is not the request's")
	}
	if got := testutil.ToFloat64(h.c.metrics.issued); got != 1 {
		t.Errorf("certificates_issued_total = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(h.c.metrics.signDuration); got != 1 {
		t.Errorf("certificate_sign_duration_seconds has %d series, want 1", got)
	}
	if e := h.eventsRecorded(); len(e) > 0 {
		t.Errorf("events %v on an issue", e)
	}

	// Level-based: the issued request is left alone.
	h.settle(t, "mesh-1")
	h.client.ClearActions()
	if err := h.r.sync(ctx, "mesh-1"); err != nil {
		t.Fatal(err)
	}
	if got := h.calls(); len(got) > 0 {
		t.Errorf("an issued request reconciled again made calls %v", got)
	}
}

// TestValidityAsked checks that spec.expirationSeconds is kept within ten
// minutes and a day.
func TestValidityAsked(t *testing.T) {
	tests := []struct {
		name string
		csr  *certificatesv1.CertificateSigningRequest
		want time.Duration
	}{
		{"none asked", makeCSR("mesh-1").Obj(), 24 * time.Hour},
		{"too short", makeCSR("mesh-1").ExpirationSeconds(60).Obj(), 10 * time.Minute},
		{"too long", makeCSR("mesh-1").ExpirationSeconds(30 * 86400).Obj(), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.csr, makePod("web-1").Obj())
			if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
				t.Fatal(err)
			}
			certs, err := certutil.ParseCertsPEM(h.csr(t, "mesh-1").Status.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if got := certs[0].NotAfter.Sub(testNow); got != tt.want {
				t.Errorf("valid for %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRefuse(t *testing.T) {
	tests := []struct {
		name    string
		csr     *certificatesv1.CertificateSigningRequest
		pods    []runtime.Object
		reason  string // the metric's reason label
		message string // a part of the condition's message
		want    certificatesv1.RequestConditionType
		calls   []string
		event   bool // a Warning Event on pod web-1
	}{
		{
			name: "a user, not a node", csr: makeCSR("mesh-1").Requester("alice", "system:authenticated").Obj(),
			reason: reasonRequester, message: `requester "alice" is not a node`, want: certificatesv1.CertificateDenied,
			calls: []string{"update certificatesigningrequests/approval"},
		},
		{
			name: "a DNS SAN", csr: makeCSR("mesh-1").Request(makeRequest().DNS("web.default.svc").PEM()).Obj(),
			reason: reasonRequest, message: "exactly one URI SAN", want: certificatesv1.CertificateDenied,
			calls: []string{"update certificatesigningrequests/approval"},
		},
		{
			name: "a token the API server does not authenticate", csr: makeCSR("mesh-1").Token("forged").Obj(),
			reason: reasonToken, message: "not authenticated: invalid bearer token", want: certificatesv1.CertificateDenied,
			calls: []string{"create tokenreviews", "update certificatesigningrequests/approval"},
		},
		{
			name: "a pod on another node", csr: makeCSR("mesh-1").Obj(), pods: []runtime.Object{makePod("web-1").Node("b").Obj()},
			reason: reasonPod, message: "pod default/web-1 runs on node b, not on node a", want: certificatesv1.CertificateDenied,
			calls: []string{"create tokenreviews", "get pods", "update certificatesigningrequests/approval"}, event: true,
		},
		{
			name: "a deleted pod", csr: makeCSR("mesh-1").Obj(),
			reason: reasonPod, message: "pod default/web-1 does not exist", want: certificatesv1.CertificateDenied,
			calls: []string{"create tokenreviews", "get pods", "update certificatesigningrequests/approval"},
		},
		{
			name: "approved by someone else, for a pod on another node", csr: makeCSR("mesh-1").Condition(certificatesv1.CertificateApproved).Obj(),
			pods:   []runtime.Object{makePod("web-1").Node("b").Obj()},
			reason: reasonPod, message: "runs on node b, not on node a", want: certificatesv1.CertificateFailed,
			calls: []string{"create tokenreviews", "get pods", "update certificatesigningrequests/status"}, event: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, append(tt.pods, tt.csr)...)
			if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
				t.Fatal(err)
			}
			if got := h.calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("calls %v, want %v", got, tt.calls)
			}
			csr := h.csr(t, "mesh-1")
			c := condition(csr, tt.want)
			if c == nil || c.Status != corev1.ConditionTrue || c.Reason != ReasonRefused || !strings.Contains(c.Message, tt.message) {
				t.Fatalf("%s condition %+v, want reason %s and a message with %q", tt.want, c, ReasonRefused, tt.message)
			}
			if len(csr.Status.Certificate) > 0 {
				t.Error("a refused request got a certificate")
			}
			for _, r := range reasons {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if got := testutil.ToFloat64(h.c.metrics.refused.WithLabelValues(r)); got != want {
					t.Errorf("certificates_refused_total{reason=%q} = %v, want %v", r, got, want)
				}
			}
			events := h.eventsRecorded()
			switch {
			case tt.event && (len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+EventRefused+" ") || !strings.Contains(events[0], tt.message)):
				t.Errorf("events %q, want one Warning %s saying %q", events, EventRefused, tt.message)
			case !tt.event && len(events) > 0:
				t.Errorf("events %q, want none (no pod known)", events)
			}

			// Level-based: the refused request is left alone.
			h.settle(t, "mesh-1")
			h.client.ClearActions()
			if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
				t.Fatal(err)
			}
			if got := h.calls(); len(got) > 0 {
				t.Errorf("a refused request reconciled again made calls %v", got)
			}
		})
	}
}

// TestLeftAlone lists the requests the signer does not touch.
func TestLeftAlone(t *testing.T) {
	tests := []struct {
		name string
		csr  *certificatesv1.CertificateSigningRequest
	}{
		{"issued", makeCSR("mesh-1").Condition(certificatesv1.CertificateApproved).Certificate([]byte("issued before")).Obj()},
		{"denied", makeCSR("mesh-1").Condition(certificatesv1.CertificateDenied).Obj()},
		{"failed", makeCSR("mesh-1").Condition(certificatesv1.CertificateApproved).Condition(certificatesv1.CertificateFailed).Obj()},
		{"another signer's", makeCSR("mesh-1").Signer("kubernetes.io/kube-apiserver-client-kubelet").Obj()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.csr, makePod("web-1").Obj())
			if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
				t.Fatal(err)
			}
			if got := h.calls(); len(got) > 0 {
				t.Errorf("calls %v, want none", got)
			}
		})
	}
	h := newHarness(t)
	if err := h.r.sync(context.Background(), "gone"); err != nil {
		t.Errorf("a deleted request: %v", err)
	}
}

// TestApprovedNotSigned is a restart between the approval and the
// signature: the next reconcile verifies again and signs.
func TestApprovedNotSigned(t *testing.T) {
	h := newHarness(t, makeCSR("mesh-1").Condition(certificatesv1.CertificateApproved).Obj(), makePod("web-1").Obj())
	if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"create tokenreviews", "get pods", "update certificatesigningrequests/status"}
	if got := h.calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if len(h.csr(t, "mesh-1").Status.Certificate) == 0 {
		t.Error("no certificate")
	}
}

// TestTransientErrors checks that a failing API is retried, never taken
// for a refusal.
func TestTransientErrors(t *testing.T) {
	unavailable := apierrors.NewServiceUnavailable("etcd is electing a leader")
	tests := []struct {
		verb, resource, subresource string
	}{
		{"create", "tokenreviews", ""},
		{"get", "pods", ""},
		{"update", "certificatesigningrequests", "approval"},
		{"update", "certificatesigningrequests", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.verb+" "+tt.resource+"/"+tt.subresource, func(t *testing.T) {
			h := newHarness(t, makeCSR("mesh-1").Obj(), makePod("web-1").Obj())
			h.client.PrependReactor(tt.verb, tt.resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
				return a.GetSubresource() == tt.subresource, nil, unavailable
			})
			err := h.r.sync(context.Background(), "mesh-1")
			if !errors.Is(err, unavailable) {
				t.Fatalf("sync = %v, want the API's error", err)
			}
			csr := h.csr(t, "mesh-1")
			if condition(csr, certificatesv1.CertificateDenied) != nil || condition(csr, certificatesv1.CertificateFailed) != nil {
				t.Errorf("a transient error refused the request: %+v", csr.Status.Conditions)
			}
			// The next try succeeds.
			h.client.ReactionChain = h.client.ReactionChain[1:]
			h.settle(t, "mesh-1")
			if err := h.r.sync(context.Background(), "mesh-1"); err != nil {
				t.Fatal(err)
			}
			if len(h.csr(t, "mesh-1").Status.Certificate) == 0 {
				t.Error("no certificate after the retry")
			}
		})
	}
}

func TestNew(t *testing.T) {
	ca := testCA(t)
	notCA := *ca
	notCA.Cert = &x509.Certificate{}
	client := fake.NewClientset()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{Client: client, CA: ca}, ""},
		{"no client", Config{CA: ca}, "Config.Client"},
		{"no CA", Config{Client: client}, "Config.CA"},
		{"not a CA", Config{Client: client, CA: &notCA}, "Config.CA"},
		{"a bad trust domain", Config{Client: client, CA: ca, TrustDomain: "Cluster.Local"}, "Config.TrustDomain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c.cfg.TrustDomain != DefaultTrustDomain || c.cfg.Log == nil || c.cfg.Clock == nil {
					t.Fatalf("New = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
	// A second controller in the process counts on with the first one's
	// collectors.
	reg := prometheus.NewPedanticRegistry()
	for range 2 {
		if _, err := New(Config{Client: client, CA: ca, Registerer: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRun runs the controller over a fake API: a request created while it
// runs is issued, and Run returns with its goroutines gone when ctx ends.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newController(t)
	if _, err := h.client.CoreV1().Pods("default").Create(context.Background(), makePod("web-1").Obj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.c.Run(ctx) }()
	if _, err := h.client.CertificatesV1().CertificateSigningRequests().Create(ctx, makeCSR("mesh-1").Obj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		csr, err := h.client.CertificatesV1().CertificateSigningRequests().Get(ctx, "mesh-1", metav1.GetOptions{})
		return err == nil && len(csr.Status.Certificate) > 0, nil
	})
	if err != nil {
		t.Errorf("no certificate: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	// The informer asked for the signer's requests only.
	for _, a := range h.client.Actions() {
		if l, ok := a.(k8stesting.ListAction); ok && a.GetResource() == (schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}) {
			if got := l.GetListRestrictions().Fields.String(); got != "spec.signerName="+SignerName {
				t.Errorf("the informer lists with field selector %q", got)
			}
		}
	}
}
