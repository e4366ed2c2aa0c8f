package ingress

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// upstream starts a backend on 127.0.0.1 answering "name path" and
// echoing the forwarding headers it got; h, when given, answers instead.
func upstream(t testing.TB, name string, h http.HandlerFunc) netip.AddrPort {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen-Host", r.Host)
			w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
			w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
			w.Header().Set("X-Seen-Forwarded-Host", r.Header.Get("X-Forwarded-Host"))
			fmt.Fprintf(w, "%s %s", name, r.URL.Path)
		}
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

// eventually polls ok until it holds, failing the test after 20 s.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 20 s", what)
		}
	}
}

// deadAddr is a 127.0.0.1 port nobody listens on.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return a
}

type fixture struct {
	p         *Proxy
	reg       *prometheus.Registry
	httpAddr  string
	httpsAddr string
}

// newFixture serves a Proxy over HTTP and HTTPS on 127.0.0.1 with the
// hardened servers.
func newFixture(t testing.TB, cfg ProxyConfig) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry()}
	cfg.Registerer = f.reg
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPSPort = httpsLn.Addr().(*net.TCPAddr).Port
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain, secure := p.Server(false), p.Server(true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); plain.Serve(httpLn) }()
	go func() { defer wg.Done(); secure.ServeTLS(httpsLn, "", "") }()
	t.Cleanup(func() {
		plain.Close()
		secure.Close()
		wg.Wait()
	})
	f.httpAddr, f.httpsAddr = httpLn.Addr().String(), httpsLn.Addr().String()
	return f
}

// set builds a table from ings, Services "svc" with port http:80 for each
// key of backends, and one EndpointSlice per endpoint.
func (f *fixture) set(ings []*networkingv1.Ingress, backends map[string][]netip.AddrPort, secrets ...*corev1.Secret) {
	in := State{Ingresses: ings, Secrets: secrets, Now: time.Now()}
	for svc, eps := range backends {
		in.Services = append(in.Services, makeService("ns", svc).port("http", 80).obj())
		for _, ep := range eps {
			in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", svc, ep))
		}
	}
	f.p.SetTable(Build(in))
}

// get sends a request to the HTTP listener with the given Host.
func (f *fixture) do(t *testing.T, method, host, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+f.httpAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (f *fixture) get(t *testing.T, host, path string) (*http.Response, string) {
	t.Helper()
	return f.do(t, http.MethodGet, host, path, nil)
}

func TestProxyRouting(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{
		makeIngress("ns", "i").
			path("foo.com", "/a", prefix, "a", 80).
			path("foo.com", "/b", exact, "b", "http").
			path("*.foo.com", "/", prefix, "wild", 80).obj(),
	}, map[string][]netip.AddrPort{
		"a":    {upstream(t, "a", nil)},
		"b":    {upstream(t, "b", nil)},
		"wild": {upstream(t, "wild", nil)},
	})
	tests := []struct {
		host, path string
		code       int
		body       string
	}{
		{"foo.com", "/a/x", 200, "a /a/x"},
		{"FOO.COM:80", "/a", 200, "a /a"},
		{"foo.com", "/b", 200, "b /b"},
		{"foo.com", "/b/x", 404, `no route matches host "foo.com" path "/b/x"`},
		{"x.foo.com", "/anything", 200, "wild /anything"},
		{"y.x.foo.com", "/", 404, `no route matches host "y.x.foo.com" path "/"`},
		{"other.com", "/a", 404, `no route matches host "other.com" path "/a"`},
	}
	for _, tt := range tests {
		resp, body := f.get(t, tt.host, tt.path)
		if resp.StatusCode != tt.code || strings.TrimSpace(body) != tt.body {
			t.Errorf("%s%s: %d %q, want %d %q", tt.host, tt.path, resp.StatusCode, body, tt.code, tt.body)
		}
	}
	resp, _ := f.get(t, "foo.com", "/a")
	if got := resp.Header.Get("X-Seen-Host"); got != "foo.com" {
		t.Errorf("upstream saw Host %q, want foo.com", got)
	}
	if got := resp.Header.Get("X-Seen-For"); got != "127.0.0.1" {
		t.Errorf("upstream saw X-Forwarded-For %q, want 127.0.0.1", got)
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "http" {
		t.Errorf("upstream saw X-Forwarded-Proto %q, want http", got)
	}
	if got := resp.Header.Get("X-Seen-Forwarded-Host"); got != "foo.com" {
		t.Errorf("upstream saw X-Forwarded-Host %q, want foo.com", got)
	}
	// Metrics are recorded after the response is sent.
	eventually(t, "requests_total for ns/i a 200 reaching 3", func() bool {
		return testutil.ToFloat64(f.p.metrics.requests.WithLabelValues(KindIngress, "ns", "i", "a", "200")) == 3
	})
}

func TestProxyUnavailable(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	if resp, body := f.get(t, "foo.com", "/"); resp.StatusCode != 503 || !strings.Contains(body, "not loaded") {
		t.Errorf("before any table: %d %q, want 503", resp.StatusCode, body)
	}
	f.set([]*networkingv1.Ingress{
		makeIngress("ns", "i").
			path("", "/empty", prefix, "empty", 80).
			path("", "/missing", prefix, "nope", 80).
			path("", "/noport", prefix, "empty", 81).obj(),
	}, map[string][]netip.AddrPort{"empty": nil})
	tests := []struct{ path, body string }{
		{"/empty", "no healthy endpoint for service ns/empty:80"},
		{"/missing", "service ns/nope not found"},
		{"/noport", "service ns/empty has no port 81"},
	}
	for _, tt := range tests {
		resp, body := f.get(t, "foo.com", tt.path)
		if resp.StatusCode != 503 || strings.TrimSpace(body) != tt.body {
			t.Errorf("%s: %d %q, want 503 %q", tt.path, resp.StatusCode, body, tt.body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type %q, want text/plain", tt.path, ct)
		}
	}
}

func TestProxyRetry(t *testing.T) {
	dead, live := deadAddr(t), upstream(t, "live", nil)
	ings := []*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()}
	backends := map[string][]netip.AddrPort{"web": {dead, live}}

	t.Run("GET is retried on another endpoint", func(t *testing.T) {
		f := newFixture(t, ProxyConfig{})
		f.set(ings, backends)
		for i := range 4 {
			if resp, body := f.get(t, "foo.com", "/x"); resp.StatusCode != 200 || body != "live /x" {
				t.Errorf("GET %d: %d %q, want 200 from live", i, resp.StatusCode, body)
			}
		}
	})
	t.Run("POST is not retried", func(t *testing.T) {
		f := newFixture(t, ProxyConfig{})
		f.set(ings, backends)
		codes := map[int]int{}
		var failed string
		for range 2 {
			resp, body := f.do(t, http.MethodPost, "foo.com", "/x", nil)
			codes[resp.StatusCode]++
			if resp.StatusCode == 502 {
				failed = body
			}
		}
		if codes[200] != 1 || codes[502] != 1 {
			t.Errorf("status codes %v, want one 200 and one 502 (round robin over a dead and a live endpoint)", codes)
		}
		want := fmt.Sprintf("upstream connect error to %s (service ns/web): ", dead)
		if !strings.HasPrefix(failed, want) || !strings.Contains(failed, "refused") {
			t.Errorf("502 body %q, want it to start with %q and say why", failed, want)
		}
	})
	t.Run("GET with every endpoint dead", func(t *testing.T) {
		f := newFixture(t, ProxyConfig{})
		f.set(ings, map[string][]netip.AddrPort{"web": {dead, deadAddr(t)}})
		resp, body := f.get(t, "foo.com", "/")
		if resp.StatusCode != 502 || !strings.Contains(body, "upstream connect error to 127.0.0.1:") {
			t.Errorf("%d %q, want 502 connect error", resp.StatusCode, body)
		}
	})
}

func TestProxyRoundRobin(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	eps := []netip.AddrPort{upstream(t, "a", nil), upstream(t, "b", nil), upstream(t, "c", nil)}
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": eps})
	got := map[string]int{}
	for range 30 {
		_, body := f.get(t, "foo.com", "/")
		got[body]++
	}
	for _, n := range []string{"a /", "b /", "c /"} {
		if got[n] != 10 {
			t.Errorf("answers %v, want 10 from each endpoint", got)
			break
		}
	}
}

func TestProxyAffinity(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	eps := []netip.AddrPort{upstream(t, "a", nil), upstream(t, "b", nil), upstream(t, "c", nil)}
	ings := []*networkingv1.Ingress{makeIngress("ns", "i").annotate(AnnAffinity, "cookie").path("", "/", prefix, "web", 80).obj()}
	f.set(ings, map[string][]netip.AddrPort{"web": eps[:2]})

	resp, first := f.get(t, "foo.com", "/")
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == DefaultAffinityCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no %s cookie in %v", DefaultAffinityCookie, resp.Header["Set-Cookie"])
	}
	if strings.Contains(cookie.Value, "127.0.0.1") || cookie.Value == "" {
		t.Errorf("cookie value %q is not an opaque hash", cookie.Value)
	}
	withCookie := http.Header{"Cookie": {cookie.String()}}
	for i := range 6 {
		if i == 3 {
			// A third endpoint joins: the client stays.
			f.set(ings, map[string][]netip.AddrPort{"web": eps})
		}
		resp, body := f.do(t, http.MethodGet, "foo.com", "/", withCookie)
		if body != first {
			t.Fatalf("request %d with the cookie went to %q, want %q", i, body, first)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("request %d: cookie re-set though it still holds", i)
		}
	}
	// The pinned endpoint leaves: the client is re-balanced and re-pinned.
	var rest []netip.AddrPort
	for i, e := range eps {
		if name := string(rune('a' + i)); !strings.HasPrefix(first, name+" ") {
			rest = append(rest, e)
		}
	}
	f.set(ings, map[string][]netip.AddrPort{"web": rest})
	resp, body := f.do(t, http.MethodGet, "foo.com", "/", withCookie)
	if body == first || resp.StatusCode != 200 {
		t.Errorf("after the pinned endpoint left: %d %q", resp.StatusCode, body)
	}
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].Value == cookie.Value {
		t.Errorf("cookies after re-pinning %v, want a new %s", cs, DefaultAffinityCookie)
	}
}

func TestProxyConsistentHash(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	eps := []netip.AddrPort{upstream(t, "a", nil), upstream(t, "b", nil), upstream(t, "c", nil)}
	f.set([]*networkingv1.Ingress{
		makeIngress("ns", "i").annotate(AnnLoadBalance, "consistent-hash").annotate(AnnHashOn, "header:X-User").
			path("", "/", prefix, "web", 80).obj(),
	}, map[string][]netip.AddrPort{"web": eps})
	seen := map[string]bool{}
	for u := range 20 {
		hdr := http.Header{"X-User": {fmt.Sprint("user-", u)}}
		_, first := f.do(t, http.MethodGet, "foo.com", "/", hdr)
		seen[first] = true
		for range 3 {
			if _, body := f.do(t, http.MethodGet, "foo.com", "/", hdr); body != first {
				t.Fatalf("user-%d went to %q then %q", u, first, body)
			}
		}
	}
	if len(seen) < 2 {
		t.Errorf("20 users all went to %v", seen)
	}
}

func TestProxyEjection(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	f := newFixture(t, ProxyConfig{Clock: clk})
	bad := upstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	good := upstream(t, "good", nil)
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {bad, good}})
	tally := func(n int) (fails int) {
		for range n {
			if resp, _ := f.get(t, "foo.com", "/"); resp.StatusCode == 500 {
				fails++
			}
		}
		return fails
	}
	if got := tally(10); got != 5 {
		t.Fatalf("%d failures in the first 10 requests, want 5 (round robin)", got)
	}
	if got := tally(10); got != 0 {
		t.Errorf("%d failures after 5 in a row, want the endpoint ejected", got)
	}
	if got := testutil.ToFloat64(f.p.metrics.ejections.WithLabelValues("ns", "web")); got != 1 {
		t.Errorf("ejections_total = %v, want 1", got)
	}
	clk.SetTime(clk.Now().Add(30 * time.Second))
	if got := tally(4); got != 2 {
		t.Errorf("%d failures after the back-off, want the endpoint back (2 of 4)", got)
	}

	// Every endpoint ejected (more ejected than left, Envoy's panic
	// threshold): the proxy balances over them all again, so the client
	// gets the backend's own answer, not a 503.
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {bad}})
	tally(5)
	if down, ejected := f.p.health.State(bad.String()); down || !ejected {
		t.Fatalf("after 5 failures: down %v, ejected %v; want ejected", down, ejected)
	}
	resp, body := f.get(t, "foo.com", "/")
	if resp.StatusCode != 500 || strings.TrimSpace(body) != "broken" {
		t.Errorf("all ejected: %d %q, want the backend's own 500 (panic routing)", resp.StatusCode, body)
	}
}

func TestProxyTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := upstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").annotate(AnnReadTimeout, "100ms").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {slow}})
	resp, body := f.get(t, "foo.com", "/")
	want := fmt.Sprintf("upstream timeout: %s (service ns/web) sent no response within 100ms", slow)
	if resp.StatusCode != 504 || strings.TrimSpace(body) != want {
		t.Errorf("%d %q, want 504 %q", resp.StatusCode, body, want)
	}
}

func TestProxyWebSocket(t *testing.T) {
	echo := upstream(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	})
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/ws", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {echo}})
	conn, err := net.Dial("tcp", f.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: foo.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	fmt.Fprint(conn, "ping over the upgraded connection")
	buf := make([]byte, len("ping over the upgraded connection"))
	if _, err := io.ReadFull(br, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "ping over the upgraded connection" {
		t.Errorf("echo %q", buf)
	}
}

func TestProxyH2C(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {upstream(t, "a", nil)}})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + f.httpAddr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "a /h2" {
		t.Errorf("%s %q, want HTTP/2.0 \"a /h2\"", resp.Proto, body)
	}
}

// peerCert handshakes with the HTTPS listener for serverName and returns
// the certificate's common name and serial, and the negotiated protocol.
func (f *fixture) peerCert(t *testing.T, serverName string) (cn, serial, proto string) {
	t.Helper()
	conn, err := tls.Dial("tcp", f.httpsAddr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	c := st.PeerCertificates[0]
	return c.Subject.CommonName, c.SerialNumber.String(), st.NegotiatedProtocol
}

func TestProxyTLS(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	a1, b := validSecret(t, "ns", "a", "a.com"), validSecret(t, "ns", "b", "*.b.com")
	ings := []*networkingv1.Ingress{makeIngress("ns", "i").tls("a", "a.com").tls("b", "*.b.com").
		path("a.com", "/", prefix, "web", 80).obj()}
	backends := map[string][]netip.AddrPort{"web": {upstream(t, "a", nil)}}
	f.set(ings, backends, a1, b)

	cn, serial1, proto := f.peerCert(t, "a.com")
	if cn != "a.com" || proto != "h2" {
		t.Errorf("a.com: CN %q protocol %q, want a.com over h2", cn, proto)
	}
	if cn, _, _ := f.peerCert(t, "x.b.com"); cn != "*.b.com" {
		t.Errorf("x.b.com: CN %q, want *.b.com", cn)
	}
	if cn, _, _ := f.peerCert(t, "unknown.com"); cn != DefaultCertificateName {
		t.Errorf("unknown.com: CN %q, want the default %s", cn, DefaultCertificateName)
	}

	// The Secret is replaced: the next handshake gets the new certificate.
	time.Sleep(time.Millisecond) // a distinct serial
	a2 := validSecret(t, "ns", "a", "a.com")
	f.set(ings, backends, a2, b)
	if _, serial2, _ := f.peerCert(t, "a.com"); serial2 == serial1 {
		t.Errorf("a.com still served serial %s after rotation", serial1)
	}

	// A request over HTTPS: HTTP/2, proxied with X-Forwarded-Proto https.
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.com", InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+f.httpsAddr+"/s", nil)
	req.Host = "a.com"
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("X-Seen-Proto") != "https" {
		t.Errorf("HTTPS request: %d %s X-Forwarded-Proto %q", resp.StatusCode, resp.Proto, resp.Header.Get("X-Seen-Proto"))
	}
}

func TestProxySSLRedirect(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{
		makeIngress("ns", "i").tls("", "secure.com").
			path("secure.com", "/", prefix, "web", 80).
			path("open.com", "/", prefix, "web", 80).obj(),
	}, map[string][]netip.AddrPort{"web": {upstream(t, "a", nil)}})
	resp, _ := f.get(t, "secure.com", "/p?q=1")
	_, port, _ := net.SplitHostPort(f.httpsAddr)
	want := "https://secure.com:" + port + "/p?q=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("secure.com over HTTP: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if resp, _ := f.get(t, "open.com", "/p"); resp.StatusCode != 200 {
		t.Errorf("open.com over HTTP: %d, want 200", resp.StatusCode)
	}
}

func TestProxyStreaming(t *testing.T) {
	release := make(chan struct{})
	stream := upstream(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "first")
		http.NewResponseController(w).Flush()
		<-release
		fmt.Fprintln(w, "second")
	})
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {stream}})
	resp, err := http.Get("http://" + f.httpAddr + "/")
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line := make(chan string, 1)
	go func() {
		s, _ := br.ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s != "first\n" {
			t.Errorf("first chunk %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Error("the first chunk did not arrive before the backend finished")
	}
	close(release)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

// raw sends a raw request to the HTTP listener and returns the status.
func (f *fixture) raw(t *testing.T, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", f.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxyHardening(t *testing.T) {
	var hits sync.Map
	f := newFixture(t, ProxyConfig{})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
			hits.Store(r.URL.Path, true)
		})}})
	tests := []struct {
		name    string
		request string
		want    int
	}{
		{"conflicting Content-Length (smuggling)",
			"POST /smuggle HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody", 400},
		{"invalid Content-Length",
			"POST /smuggle HTTP/1.1\r\nHost: foo.com\r\nContent-Length: +4\r\n\r\nbody", 400},
		{"header over 64 KiB",
			"GET /big HTTP/1.1\r\nHost: foo.com\r\nX-Big: " + strings.Repeat("x", 80<<10) + "\r\n\r\n", 431},
		{"valid request", "GET /ok HTTP/1.1\r\nHost: foo.com\r\nConnection: close\r\n\r\n", 200},
	}
	for _, tt := range tests {
		if got := f.raw(t, tt.request); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
	if _, ok := hits.Load("/smuggle"); ok {
		t.Error("a smuggling attempt reached the backend")
	}
	if _, ok := hits.Load("/ok"); !ok {
		t.Error("the valid request did not reach the backend")
	}
	s := f.p.Server(false)
	if s.ReadHeaderTimeout != 10*time.Second || s.MaxHeaderBytes != 64<<10 || s.IdleTimeout != 90*time.Second {
		t.Errorf("server limits %v %d %v", s.ReadHeaderTimeout, s.MaxHeaderBytes, s.IdleTimeout)
	}
}

func TestProxyTableSwap(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	old := upstream(t, "old", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		fmt.Fprint(w, "old")
	})
	f := newFixture(t, ProxyConfig{})
	ings := []*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()}
	f.set(ings, map[string][]netip.AddrPort{"web": {old}})
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + f.httpAddr + "/")
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	<-started
	f.set(ings, map[string][]netip.AddrPort{"web": {upstream(t, "new", nil)}})
	if _, body := f.get(t, "foo.com", "/"); body != "new /" {
		t.Errorf("a request after the swap got %q, want the new endpoint", body)
	}
	close(release)
	if got := <-done; got != "200 old" {
		t.Errorf("the request in flight during the swap got %q, want \"200 old\"", got)
	}
}

func TestProxyAccessLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil)
	f := newFixture(t, ProxyConfig{AccessLog: true, Log: slog.New(h)})
	ep := upstream(t, "a", nil)
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {ep}})
	f.get(t, "foo.com", "/logged")
	// The line is written after the response is sent.
	var line string
	eventually(t, "an access log line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		line = buf.String()
		return line != ""
	})
	for _, want := range []string{"method=GET", "host=foo.com", "path=/logged", "status=200", "bytes=9", "upstream=" + ep.String(), "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("access log %q lacks %q", line, want)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestProxyStreams: a response of unknown length reaches the client as the
// upstream writes it, not when it ends.
func TestProxyStreams(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	release := make(chan struct{})
	ep := upstream(t, "s", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		w.Write([]byte("second\n"))
	})
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("s.test", "/", prefix, "s", 80).obj()}, map[string][]netip.AddrPort{"s": {ep}})
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.httpAddr+"/", nil)
	req.Host = "s.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer close(release)
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 6)
		n, _ := io.ReadFull(resp.Body, b)
		line <- string(b[:n])
	}()
	select {
	case got := <-line:
		if got != "first\n" {
			t.Errorf("first chunk %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk did not arrive while the upstream was still writing")
	}
}
