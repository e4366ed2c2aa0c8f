package meshca

import (
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		in      string
		td      string
		ns, sa  string
		wantErr string // a part of the error; empty: valid
	}{
		{in: "spiffe://cluster.local/ns/default/sa/web", td: "cluster.local", ns: "default", sa: "web"},
		{in: "spiffe://my_corp.example-1/ns/kube-system/sa/coredns.v2", td: "my_corp.example-1", ns: "kube-system", sa: "coredns.v2"},
		{in: "https://cluster.local/ns/default/sa/web", wantErr: "scheme"},
		{in: "SPIFFE://cluster.local/ns/default/sa/web", td: "cluster.local", ns: "default", sa: "web"}, // url.Parse lowercases schemes
		{in: "spiffe:cluster.local/ns/default/sa/web", wantErr: "no trust domain"},
		{in: "spiffe:///ns/default/sa/web", wantErr: "trust domain is empty"},
		{in: "spiffe://node@cluster.local/ns/default/sa/web", wantErr: "user info"},
		{in: "spiffe://cluster.local:443/ns/default/sa/web", wantErr: "port"},
		{in: "spiffe://[::1]/ns/default/sa/web", wantErr: "port"},
		{in: "spiffe://Cluster.Local/ns/default/sa/web", wantErr: "lowercase"},
		{in: "spiffe://cluster.local/ns/default/sa/web?x=1", wantErr: "query"},
		{in: "spiffe://cluster.local/ns/default/sa/web?", wantErr: "query"},
		{in: "spiffe://cluster.local/ns/default/sa/web#frag", wantErr: "fragment"},
		{in: "spiffe://cluster.local/ns/default/sa/we%2Fb", wantErr: "escaped"},
		{in: "spiffe://cluster.local/ns/default/sa/w%65b", wantErr: "escaped"},
		{in: "spiffe://cluster.local/ns/default/sa/web/", wantErr: "path"},
		{in: "spiffe://cluster.local/ns/default/sa/web/x", wantErr: "path"},
		{in: "spiffe://cluster.local/ns/default/web", wantErr: "path"},
		{in: "spiffe://cluster.local/namespace/default/sa/web", wantErr: "path"},
		{in: "spiffe://cluster.local//ns/default/sa/web", wantErr: "path"},
		{in: "spiffe://cluster.local/ns//sa/web", wantErr: "namespace"},
		{in: "spiffe://cluster.local/ns/Default/sa/web", wantErr: "namespace"},
		{in: "spiffe://cluster.local/ns/default/sa/", wantErr: "service account"},
		{in: "spiffe://cluster.local/ns/default/sa/..", wantErr: "service account"},
		{in: "spiffe://cluster.local", wantErr: "path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			td, ns, sa, err := ParseSPIFFEID(u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSPIFFEID = %q %q %q, %v; want an error about %q", td, ns, sa, err, tt.wantErr)
				}
				return
			}
			if err != nil || td != tt.td || ns != tt.ns || sa != tt.sa {
				t.Fatalf("ParseSPIFFEID = %q %q %q, %v; want %q %q %q", td, ns, sa, err, tt.td, tt.ns, tt.sa)
			}
			if got := SPIFFEID(td, ns, sa); !strings.EqualFold(got, tt.in) {
				t.Errorf("SPIFFEID(%q, %q, %q) = %q, want %q", td, ns, sa, got, tt.in)
			}
		})
	}
	if _, _, _, err := ParseSPIFFEID(nil); err == nil {
		t.Error("ParseSPIFFEID(nil) took it")
	}
}

// TestDecide is the signer's specification: which evidence gets a
// certificate, and what a refusal says.
func TestDecide(t *testing.T) {
	notAuthenticated := &authenticationv1.TokenReviewStatus{Error: "token has expired"}
	otherAudience := webReview()
	otherAudience.Audiences = []string{"https://kubernetes.default.svc"}
	twoPods := webReview()
	twoPods.User.Extra[podNameKey] = authenticationv1.ExtraValue{"web-1", "web-2"}

	tests := []struct {
		name   string
		csr    *certificatesv1.CertificateSigningRequest
		review *authenticationv1.TokenReviewStatus
		pod    *corev1.Pod // nil with a review: the pod does not exist
		// want: "issue", "need review", "need pod NAME", or the refusal's
		// reason and a part of its message, "reason: message".
		want string
	}{
		// What gets a certificate.
		{"node a's proxy for its pod", makeCSR("c").Obj(), webReview(), makePod("web-1").Obj(), "issue"},
		{"a pending pod bound to the node", makeCSR("c").Obj(), webReview(), makePod("web-1").Phase(corev1.PodPending).Obj(), "issue"},
		{"a P-384 key", makeCSR("c").Request(makeRequest().Key(p384Key()).PEM()).Obj(), webReview(), makePod("web-1").Obj(), "issue"},
		{"an RSA 2048 key", makeCSR("c").Request(makeRequest().Key(rsa2048Key()).PEM()).Obj(), webReview(), makePod("web-1").Obj(), "issue"},
		{"fewer usages", makeCSR("c").Usages(certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth).Obj(), webReview(), makePod("web-1").Obj(), "issue"},
		{"the default service account", makeCSR("c").Request(makeRequest().URI(SPIFFEID(testDomain, "default", "default")).PEM()).Obj(),
			reviewOf("system:serviceaccount:default:default", "web-1", "uid-web-1"), makePod("web-1").SA("").Obj(), "issue"},

		// What the shell fetches, in order.
		{"first the token's review", makeCSR("c").Obj(), nil, nil, "need review"},
		{"then the token's pod", makeCSR("c").Obj(), reviewOf("system:serviceaccount:default:web", "web-7", "uid-web-7"), nil, "need pod web-7"},

		// a. The requester.
		{"a user", makeCSR("c").Requester("alice", "system:authenticated").Obj(), nil, nil, "requester: requester \"alice\" is not a node"},
		{"a node user outside system:nodes", makeCSR("c").Requester("system:node:a", "system:authenticated").Obj(), nil, nil, "requester: is not a node"},
		{"system:nodes without a node name", makeCSR("c").Requester("system:node:", "system:nodes").Obj(), nil, nil, "requester: is not a node"},
		{"a service account in system:nodes", makeCSR("c").Requester("system:serviceaccount:default:web", "system:nodes").Obj(), nil, nil, "requester: is not a node"},

		// b. The x509 request.
		{"not PEM", makeCSR("c").Request([]byte("hello")).Obj(), nil, nil, "request: not a PEM CERTIFICATE REQUEST"},
		{"a certificate, not a request", makeCSR("c").Request([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).Obj(), nil, nil, "request: not a PEM CERTIFICATE REQUEST"},
		{"a request that does not parse", makeCSR("c").Request([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")).Obj(), nil, nil, "request: does not parse"},
		{"a bad signature", makeCSR("c").Request(makeRequest().Tampered()).Obj(), nil, nil, "request: not signed by its key"},
		{"no URI SAN", makeCSR("c").Request(makeRequest().URI().PEM()).Obj(), nil, nil, "request: names 0 URI, 0 DNS, 0 IP and 0 email SANs"},
		{"two URI SANs", makeCSR("c").Request(makeRequest().URI(SPIFFEID(testDomain, "default", "web"), SPIFFEID(testDomain, "default", "db")).PEM()).Obj(), nil, nil, "request: names 2 URI"},
		{"a DNS SAN too", makeCSR("c").Request(makeRequest().DNS("web.default.svc").PEM()).Obj(), nil, nil, "request: names 1 URI, 1 DNS"},
		{"an IP SAN too", makeCSR("c").Request(makeRequest().IP("10.42.0.7").PEM()).Obj(), nil, nil, "request: 1 IP"},
		{"an email SAN too", makeCSR("c").Request(makeRequest().Email("web@example.com").PEM()).Obj(), nil, nil, "request: 1 email"},
		{"not a SPIFFE ID", makeCSR("c").Request(makeRequest().URI("https://web.default.svc/").PEM()).Obj(), nil, nil, "request: \"https://web.default.svc/\" is not a service account's SPIFFE ID"},
		{"a workload path", makeCSR("c").Request(makeRequest().URI("spiffe://cluster.local/workload/web").PEM()).Obj(), nil, nil, "request: its path is not /ns/NAMESPACE/sa/SERVICEACCOUNT"},
		{"another trust domain", makeCSR("c").Request(makeRequest().URI(SPIFFEID("example.org", "default", "web")).PEM()).Obj(), nil, nil, "request: the SPIFFE ID spiffe://example.org/ns/default/sa/web is not of the trust domain cluster.local"},
		{"a P-224 key", makeCSR("c").Request(makeRequest().Key(p224Key()).PEM()).Obj(), nil, nil, "request: curve P-224 is not P-256 or P-384"},
		{"an RSA 1024 key", makeCSR("c").Request(makeRequest().Key(rsa1024Key()).PEM()).Obj(), nil, nil, "request: the RSA key has 1024 bits"},
		{"an Ed25519 key", makeCSR("c").Request(makeRequest().Key(ed25519Key()).PEM()).Obj(), nil, nil, "request: the key is a ed25519.PublicKey"},
		{"a CA usage", makeCSR("c").Usages(certificatesv1.UsageDigitalSignature, certificatesv1.UsageCertSign).Obj(), nil, nil, "request: usage \"cert sign\""},

		// c. The token.
		{"no token", makeCSR("c").Token("").Obj(), nil, nil, "token: no service-account token in the annotation mesh.skiff.dev/token"},
		{"a token not authenticated", makeCSR("c").Obj(), notAuthenticated, nil, "token: not authenticated: token has expired"},
		{"a token not authenticated, no reason", makeCSR("c").Obj(), &authenticationv1.TokenReviewStatus{}, nil, "token: not authenticated: no reason given"},
		{"a token of another audience", makeCSR("c").Obj(), otherAudience, nil, "token: the token's audiences [https://kubernetes.default.svc] do not include mesh.skiff.dev"},
		{"a token of another service account", makeCSR("c").Obj(), reviewOf("system:serviceaccount:default:db", "db-1", "uid-db-1"), nil,
			"token: the token is system:serviceaccount:default:db's, not system:serviceaccount:default:web's"},
		{"a node's own token", makeCSR("c").Obj(), reviewOf("system:node:a", "", ""), nil, "token: the token is system:node:a's"},
		{"a token bound to no pod", makeCSR("c").Obj(), reviewOf("system:serviceaccount:default:web", "", ""), nil, "token: the token of system:serviceaccount:default:web is not bound to a pod"},
		{"a token without the pod's uid", makeCSR("c").Obj(), reviewOf("system:serviceaccount:default:web", "web-1", ""), nil, "token: not bound to a pod"},
		{"a token naming two pods", makeCSR("c").Obj(), twoPods, nil, "token: not bound to a pod"},

		// c. The pod: node authorization.
		{"a pod on another node", makeCSR("c").Obj(), webReview(), makePod("web-1").Node("b").Obj(), "pod: pod default/web-1 runs on node b, not on node a"},
		{"an unscheduled pod", makeCSR("c").Obj(), webReview(), makePod("web-1").Node("").Obj(), "pod: pod default/web-1 is not scheduled, not on node a"},
		{"a deleted pod", makeCSR("c").Obj(), webReview(), nil, "pod: pod default/web-1 does not exist"},
		{"a replaced pod", makeCSR("c").Obj(), webReview(), makePod("web-1").UID("uid-new").Obj(), "pod: pod default/web-1 has uid uid-new, not the token's uid-web-1"},
		{"a pod of another service account", makeCSR("c").Obj(), webReview(), makePod("web-1").SA("db").Obj(), "pod: pod default/web-1 runs as service account db, not web"},
		{"a succeeded pod", makeCSR("c").Obj(), webReview(), makePod("web-1").Phase(corev1.PodSucceeded).Obj(), "pod: pod default/web-1 has terminated (phase Succeeded)"},
		{"a failed pod", makeCSR("c").Obj(), webReview(), makePod("web-1").Phase(corev1.PodFailed).Obj(), "pod: has terminated (phase Failed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := evidence{csr: tt.csr, review: tt.review, pod: tt.pod, podMissing: tt.review != nil && tt.pod == nil}
			if strings.HasPrefix(tt.want, "need pod") {
				ev.podMissing = false
			}
			d := decide(testDomain, ev)
			var got string
			switch {
			case d.refused != nil:
				got = d.refused.reason + ": " + d.refused.message
			case d.next == needReview:
				got = "need review"
			case d.next == needPod:
				got = "need pod " + d.podName
			default:
				got = "issue"
			}
			wantReason, wantMsg, refusal := strings.Cut(tt.want, ": ")
			if refusal {
				if d.refused == nil || d.refused.reason != wantReason || !strings.Contains(d.refused.message, wantMsg) {
					t.Fatalf("decide = %q, want %q", got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("decide = %q, want %q", got, tt.want)
			}
			if got == "issue" && (d.id.Node != "a" || d.id.Namespace != "default" || d.request == nil ||
				d.id.ID.String() != SPIFFEID(testDomain, d.id.Namespace, d.id.ServiceAccount)) {
				t.Errorf("issue for %+v", d.id)
			}
		})
	}
}

func TestValidity(t *testing.T) {
	tests := []struct {
		asked *int32
		want  time.Duration
	}{
		{nil, 24 * time.Hour},
		{ptr.To[int32](60), 10 * time.Minute},
		{ptr.To[int32](600), 10 * time.Minute},
		{ptr.To[int32](3600), time.Hour},
		{ptr.To[int32](86400), 24 * time.Hour},
		{ptr.To[int32](7 * 86400), 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := validity(tt.asked); got != tt.want {
			t.Errorf("validity(%v) = %v, want %v", ptr.Deref(tt.asked, -1), got, tt.want)
		}
	}
}

func TestLeafTemplate(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	id := must(url.Parse(SPIFFEID(testDomain, "default", "web")))
	leaf := leafTemplate(id, big.NewInt(7), now, ptr.To[int32](3600), now.Add(365*24*time.Hour))
	if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("valid %v to %v, want a minute ago to in an hour", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid || len(leaf.URIs) != 1 || leaf.URIs[0] != id || len(leaf.DNSNames) > 0 {
		t.Errorf("leaf IsCA %t, URIs %v, DNS %v", leaf.IsCA, leaf.URIs, leaf.DNSNames)
	}
	// Never past the CA.
	caEnd := now.Add(10 * time.Minute)
	if leaf := leafTemplate(id, big.NewInt(7), now, nil, caEnd); !leaf.NotAfter.Equal(caEnd) {
		t.Errorf("NotAfter %v past the CA's %v", leaf.NotAfter, caEnd)
	}
}
