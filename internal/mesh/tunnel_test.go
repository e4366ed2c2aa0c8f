package mesh

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"

	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// testCA issues mesh certificates as the mesh CA does.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-mesh-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t testing.TB, id Identity) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://cluster.local/ns/" + id.Namespace + "/sa/" + id.ServiceAccount)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// testProxy is a proxy of node "a" whose identities hold certificates of
// ca, over world.
func testProxy(t testing.TB, ca *testCA, world World, ids ...Identity) *Proxy {
	t.Helper()
	m := newMetrics()
	p := &Proxy{cfg: Config{NodeName: "a", TrustDomain: "cluster.local", Clock: clock.RealClock{}, Log: slog.Default(), Client: fake.NewClientset()},
		metrics: m, tunnels: newTunnels(), world: world}
	p.denials.p = p
	p.ids = newIdentities(nil, "a", "cluster.local", clock.RealClock{}, m, slog.Default())
	p.ids.roots.AddCert(ca.cert)
	for _, id := range ids {
		c := &idCert{cert: ca.issue(t, id), notAfter: time.Now().Add(time.Hour), issued: make(chan struct{})}
		close(c.issued)
		p.ids.certs[id] = c
	}
	p.policies.Store(&policies{})
	return p
}

// echoServer answers each connection with what it read, then closes.
func echoServer(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write(b)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// tunnelPair are a source and a destination proxy on 127.0.0.1, the
// destination serving tunnels, for pod shop/web-1 (service account web)
// at 127.0.0.1; the source holds the certificate of shop/client.
type tunnelPair struct {
	src, dst       *Proxy
	client, server Identity
}

func newTunnelPair(t testing.TB, ctx context.Context) *tunnelPair {
	ca := newTestCA(t)
	tp := &tunnelPair{client: Identity{"shop", "client"}, server: Identity{"shop", "web"}}
	web := pod("shop", "web-1", "127.0.0.1", nil)
	web.Spec.ServiceAccountName = "web"
	world := &fakeWorld{pods: []*corev1.Pod{web}, namespaces: []*corev1.Namespace{ns("shop", map[string]string{EnabledLabel: "true"})}}
	tp.dst = testProxy(t, ca, world, tp.server)
	tp.src = testProxy(t, ca, world, tp.client)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tp.src.tunnels.port = uint16(l.Addr().(*net.TCPAddr).Port)
	cfg := serverTLS(func(id Identity) (*tls.Certificate, error) {
		c, _, err := tp.dst.ids.Get(ctx, id, 0)
		return c, err
	}, tp.dst.ids.Roots, "cluster.local")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go tp.dst.serveTunnel(ctx, tls.Server(c, cfg))
		}
	}()
	return tp
}

// open opens a stream to target as identity as (whose certificate the
// source must hold).
func (tp *tunnelPair) open(ctx context.Context, as Identity, target netip.AddrPort) (*stream, error) {
	cert, roots, err := tp.src.ids.Get(ctx, tp.client, time.Second)
	if err != nil {
		return nil, err
	}
	return tp.src.tunnels.open(ctx, tunnelKey{src: as, dst: tp.server, node: netip.MustParseAddr("127.0.0.1")},
		clientTLS(cert, roots, tp.server, "cluster.local"), target, netip.MustParseAddr("10.42.0.9"), "shop/web")
}

func TestTunnel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tp := newTunnelPair(t, ctx)
	src, dst, client := tp.src, tp.dst, tp.client
	target := echoServer(t)
	open := func(as Identity) (*stream, error) { return tp.open(ctx, as, target) }

	// Two streams over one pooled connection, each a full exchange.
	for range 2 {
		s, err := open(client)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("hello through the mesh")); err != nil {
			t.Fatal(err)
		}
		s.CloseWrite()
		got, err := io.ReadAll(s)
		s.Close()
		if err != nil || string(got) != "hello through the mesh" {
			t.Fatalf("echo = %q, %v", got, err)
		}
	}
	if n := len(src.tunnels.conns); n != 1 {
		t.Errorf("%d pooled tunnels, want 1", n)
	}

	// An ALLOW policy for another principal refuses the stream with 403.
	dst.policies.Store(&policies{authz: []*v1alpha1.AuthorizationPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "only-admin"},
		Spec:       v1alpha1.AuthorizationPolicySpec{Rules: []v1alpha1.Rule{{From: []v1alpha1.RuleFrom{{Source: v1alpha1.Source{Principals: []string{"cluster.local/ns/shop/sa/admin"}}}}}}},
	}}})
	_, err := open(client)
	var refused *refusedError
	if !errors.As(err, &refused) || refused.status != 403 {
		t.Fatalf("open under a policy for another principal: %v, want a 403 refusal", err)
	}

	// A policy that names paths decides each HTTP request: 403 for the
	// others, on the same connection; each request is counted.
	dst.policies.Store(&policies{authz: []*v1alpha1.AuthorizationPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "paths"},
		Spec:       v1alpha1.AuthorizationPolicySpec{Rules: []v1alpha1.Rule{{To: []v1alpha1.RuleTo{{Operation: v1alpha1.Operation{Paths: []string{"/ok*"}}}}}}},
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("served " + r.URL.Path)) }))
	defer srv.Close()
	target = netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	s, err := open(client)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{{"/ok/1", 200, "served /ok/1"}, {"/secret", 403, "RBAC: access denied"}, {"/ok/2", 200, "served /ok/2"}} {
		req, _ := http.NewRequest("GET", "http://web.shop"+tc.path, nil)
		if err := req.Write(s); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || string(body) != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
	s.Close()
	want := flow{reporter: "destination", srcWorkload: "", srcNamespace: "shop",
		srcPrincipal: "spiffe://cluster.local/ns/shop/sa/client", dstWorkload: "web-1", dstNamespace: "shop", dstPrincipal: "spiffe://cluster.local/ns/shop/sa/web",
		dstServiceName: "web", dstServiceNamespace: "shop", dstService: "web.shop.svc.cluster.local", protocol: "http", security: "mutual_tls"}
	// A request is counted once its answer is sent: the client may read
	// it first.
	if got := settledCount(dst.metrics.requests.WithLabelValues(append(want.values(), "200", "")...), 2); got != 2 {
		t.Errorf("istio_requests_total{response_code=200} = %v, want 2", got)
	}

	// HTTP/2 with prior knowledge (h2c, gRPC's form) is decided and
	// counted per stream too; a refused gRPC call gets PERMISSION_DENIED.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Like gRPC servers: a trailer not announced in advance.
		w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
		_, _ = w.Write([]byte(r.Proto + " " + r.URL.Path))
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	}))
	h2srv.Config.Protocols = &protocols
	h2srv.Start()
	defer h2srv.Close()
	target = netip.MustParseAddrPort(strings.TrimPrefix(h2srv.URL, "http://"))
	s, err = open(client)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(&streamConn{stream: s, local: &net.TCPAddr{}, remote: &net.TCPAddr{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, contentType string
		code              int
		body, grpcStatus  string
	}{
		{"/ok/h2", "", 200, "HTTP/2.0 /ok/h2", "0"},
		{"/secret", "", 403, "RBAC: access denied\n", ""},
		{"/ok.Svc/Call", "application/grpc", 200, "HTTP/2.0 /ok.Svc/Call", "0"},
		{"/pkg.Svc/Secret", "application/grpc", 200, "", "7"},
	} {
		req, _ := http.NewRequest("POST", "http://web.shop"+tc.path, strings.NewReader("x"))
		req.Header.Set("X-Forwarded-For", "203.0.113.9") // passed on as it is
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status")
		if resp.StatusCode != tc.code || string(body) != tc.body || (tc.grpcStatus != "" && status != tc.grpcStatus) {
			t.Errorf("h2 POST %s = %d %q grpc-status %q, want %d %q %q", tc.path, resp.StatusCode, body, status, tc.code, tc.body, tc.grpcStatus)
		}
		if seen := resp.Header.Get("X-Seen-For"); strings.HasPrefix(tc.body, "HTTP/2.0") && seen != "203.0.113.9" {
			t.Errorf("h2 POST %s: the pod saw X-Forwarded-For %q, want the client's 203.0.113.9", tc.path, seen)
		}
	}
	cc.Close()
	grpcWant := want
	grpcWant.protocol = "grpc"
	for _, status := range []string{"0", "7"} {
		if got := settledCount(dst.metrics.requests.WithLabelValues(append(grpcWant.values(), "200", status)...), 1); got != 1 {
			t.Errorf("istio_requests_total{request_protocol=grpc,grpc_response_status=%s} = %v, want 1", status, got)
		}
	}

	events, err := dst.cfg.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
	if err != nil || len(events.Items) != 1 || events.Items[0].Reason != "MeshConnectionDenied" || events.Items[0].InvolvedObject.Name != "web-1" {
		t.Fatalf("events after the refusals: %v, %v; want one MeshConnectionDenied on web-1 (one a minute per pod and reason)", events, err)
	}
	t.Log(events.Items[0].Message)
}

// settledCount is c's value once it reaches want, or after a second.
func settledCount(c prometheus.Collector, want float64) float64 {
	deadline := time.Now().Add(time.Second)
	for {
		got := testutil.ToFloat64(c)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}
