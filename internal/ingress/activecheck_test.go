package ingress

import (
	"context"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestActiveHealthCheck: an endpoint of a Service annotated for active
// health checks leaves balancing after three failed probes and returns
// after two good ones, while requests keep going to the healthy one.
func TestActiveHealthCheck(t *testing.T) {
	var failing atomic.Bool
	flaky := upstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("flaky"))
	})
	steady := upstream(t, "steady", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("steady")) })

	f := newFixture(t, ProxyConfig{})
	svc := makeService("ns", "web").port("http", 80).obj()
	svc.Annotations = map[string]string{AnnHealthCheckPath: "ready", AnnHealthCheckInterval: "100ms"}
	in := State{
		Ingresses: []*networkingv1.Ingress{makeIngress("ns", "web").path("web.test", "/", networkingv1.PathTypePrefix, "web", 80).obj()},
		Now:       time.Now(),
	}
	in.Services = append(in.Services, svc)
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "web", flaky), sliceFor("ns", "web", steady))
	f.p.SetTable(Build(in))
	if got := f.p.Table().checks[flaky.String()]; got.Path != "/ready" || got.Interval != 100*time.Millisecond {
		t.Fatalf("check of %s = %+v, want /ready every 100ms", flaky, got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.p.RunHealthChecks(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	healthy := func(a netip.AddrPort) bool { return f.p.health.Healthy(a.String()) }
	failing.Store(true)
	eventually(t, "the failing endpoint taken out", func() bool { return !healthy(flaky) })
	if !healthy(steady) {
		t.Error("the passing endpoint was taken out too")
	}
	for range 6 {
		if _, body := f.get(t, "web.test", "/"); body != "steady" {
			t.Fatalf("a request went to %q while it fails its health check", body)
		}
	}
	failing.Store(false)
	eventually(t, "the endpoint back after passing again", func() bool { return healthy(flaky) })
}
