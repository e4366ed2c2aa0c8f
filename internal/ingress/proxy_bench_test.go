package ingress

import (
	"io"
	"net/http"
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// BenchmarkProxy sends small keep-alive requests through the proxy to one
// loopback backend, for profiles of the per-request path (go test -bench
// Proxy -benchmem -cpuprofile …). Throughput figures against other proxies
// come from bench/ingress, not from here.
func BenchmarkProxy(b *testing.B) {
	f := newFixture(b, ProxyConfig{})
	body := []byte("ok from backend\n")
	be := upstream(b, "be", func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
	prefix := networkingv1.PathTypePrefix
	f.set([]*networkingv1.Ingress{makeIngress("ns", "i").path("bench.local", "/", prefix, "web", 80).obj()},
		map[string][]netip.AddrPort{"web": {be}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+f.httpAddr+"/", nil)
			req.Host = "bench.local"
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
