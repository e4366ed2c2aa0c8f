package mesh

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// BenchmarkTunnelHTTP measures one keep-alive HTTP/1.1 request through a
// tunnel: the source's stream, the destination's TLS, HTTP/2 CONNECT,
// request sniffing, authorization and metrics, and the answer back (the
// client and the server's own work included). For CPU profiles of the
// proxies' request path: go test -run X -bench TunnelHTTP -cpuprofile.
func BenchmarkTunnelHTTP(b *testing.B) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	tp := newTunnelPair(b, ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	target := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	s, err := tp.open(ctx, tp.client, target)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	br := bufio.NewReader(s)
	req, _ := http.NewRequest(http.MethodGet, "http://web.shop/", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := req.Write(s); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("answer %d: %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}
