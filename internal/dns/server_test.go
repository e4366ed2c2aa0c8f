package dns

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// stubUpstream is the upstream resolver of the loopback test: a DNS server
// on 127.0.0.1 that knows a few names and counts the questions it gets.
type stubUpstream struct {
	addr string

	mu    sync.Mutex     // guards asked
	asked map[string]int // "udp example.com. A" → count
}

func startStubUpstream(t *testing.T) *stubUpstream {
	t.Helper()
	pc, l, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &stubUpstream{addr: pc.LocalAddr().String(), asked: map[string]int{}}
	var servers []*dns.Server
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: u}, {Listener: l, Handler: u}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		servers = append(servers, srv)
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
	})
	return u
}

func (u *stubUpstream) count(network, name string, qtype uint16) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[network+" "+name+" "+dns.TypeToString[qtype]]
}

func (u *stubUpstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	network := "tcp"
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		network = "udp"
	}
	u.mu.Lock()
	u.asked[network+" "+q.Name+" "+dns.TypeToString[q.Qtype]]++
	u.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	switch q.Name {
	case "example.com.":
		m.Answer = append(m.Answer, mustRR("example.com. 300 IN A 93.184.216.34"))
	case "cdn.example.net.":
		m.Answer = append(m.Answer, mustRR("cdn.example.net. 300 IN A 192.0.2.80"))
	case "big.example.":
		// Over UDP only the TC bit: the forwarder must ask again over TCP.
		if network == "udp" {
			m.Truncated = true
			break
		}
		for i := range 40 {
			m.Answer = append(m.Answer, mustRR(fmt.Sprintf(`big.example. 300 IN TXT "record %02d %s"`, i, strings.Repeat("x", 50))))
		}
	case "refused.example.":
		m.Rcode = dns.RcodeRefused
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, mustRR(exampleSOA))
	}
	_ = w.WriteMsg(m)
}

// TestServer runs the whole server on loopback, with a fake clientset as the
// cluster and a stub as the upstream, and asks it over UDP and TCP.
func TestServer(t *testing.T) {
	upstream := startStubUpstream(t)

	services, eps := testCluster()
	many := makeSlice("default", "many", "a").port("http", tcp, 80)
	for i := range 60 {
		many.ready(fmt.Sprintf("10.42.1.%d", i+1), "")
	}
	var objs []runtime.Object
	for _, s := range append(services,
		makeService("default", "cdn").externalName("cdn.example.net").obj(),
		makeService("default", "many").headless().port("http", tcp, 80).obj()) {
		objs = append(objs, s)
	}
	for _, s := range append(eps, many.obj()) {
		objs = append(objs, s)
	}
	client := fake.NewClientset(objs...)
	// Objects created before the informers watch would be missed by the fake
	// clientset: the test waits for both watches.
	watching := make(chan string, 10)
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		watching <- a.GetResource().Resource
		return false, nil, nil
	})

	reg := prometheus.NewRegistry()
	s, err := New(Config{
		ListenAddr: "127.0.0.1:0",
		Upstreams:  []string{upstream.addr},
		Registerer: reg,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
	}()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready within 30 s")
	}
	for range 2 {
		<-watching
	}
	addr := s.Addr().String()

	// ask sends one question; bufsize > 0 adds an EDNS0 OPT record.
	ask := func(t *testing.T, network, name string, qtype uint16, bufsize uint16) *dns.Msg {
		t.Helper()
		req := new(dns.Msg)
		req.SetQuestion(name, qtype)
		if bufsize > 0 {
			req.SetEdns0(bufsize, false)
		}
		c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: max(bufsize, dns.MinMsgSize)}
		m, _, err := c.Exchange(req, addr)
		if err != nil {
			t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
		}
		if m.Id != req.Id || !m.Response {
			t.Fatalf("reply ID %d response=%v to question %d", m.Id, m.Response, req.Id)
		}
		if (m.IsEdns0() != nil) != (bufsize > 0) {
			t.Errorf("reply has OPT: %v; question had: %v", m.IsEdns0() != nil, bufsize > 0)
		}
		return m
	}

	for _, network := range []string{"udp", "tcp"} {
		t.Run("cluster name over "+network, func(t *testing.T) {
			m := ask(t, network, "kubernetes.default.svc.cluster.local.", dns.TypeA, 0)
			if got := rrStrings(m.Answer); !slices.Equal(got, []string{"kubernetes.default.svc.cluster.local. 5 IN A 10.43.0.1"}) || !m.Authoritative {
				t.Errorf("answer %q, authoritative %v", got, m.Authoritative)
			}
		})
	}
	t.Run("NXDOMAIN carries the SOA", func(t *testing.T) {
		m := ask(t, "udp", "nope.default.svc.cluster.local.", dns.TypeA, 1232)
		if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("rcode %s, authority %q", rcodeName(m.Rcode), rrStrings(m.Ns))
		}
	})
	t.Run("NODATA carries the SOA", func(t *testing.T) {
		m := ask(t, "tcp", "kubernetes.default.svc.cluster.local.", dns.TypeAAAA, 0)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
			t.Errorf("rcode %s, answer %q, authority %q", rcodeName(m.Rcode), rrStrings(m.Answer), rrStrings(m.Ns))
		}
	})
	t.Run("forwarded and cached", func(t *testing.T) {
		for range 3 {
			m := ask(t, "udp", "example.com.", dns.TypeA, 0)
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "93.184.216.34" || m.Authoritative {
				t.Fatalf("answer %q, authoritative %v", rrStrings(m.Answer), m.Authoritative)
			}
		}
		if n := upstream.count("udp", "example.com.", dns.TypeA); n != 1 {
			t.Errorf("upstream asked %d times, want once", n)
		}
	})
	t.Run("upstream NXDOMAIN", func(t *testing.T) {
		m := ask(t, "udp", "nothing.example.", dns.TypeA, 0)
		if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
			t.Errorf("rcode %s, authority %q", rcodeName(m.Rcode), rrStrings(m.Ns))
		}
	})
	t.Run("upstream refusal is SERVFAIL", func(t *testing.T) {
		if m := ask(t, "udp", "refused.example.", dns.TypeA, 0); m.Rcode != dns.RcodeServerFailure {
			t.Errorf("rcode %s", rcodeName(m.Rcode))
		}
	})
	t.Run("truncated upstream answer is fetched over TCP", func(t *testing.T) {
		m := ask(t, "udp", "big.example.", dns.TypeTXT, 4096)
		if len(m.Answer) != 40 || m.Truncated {
			t.Errorf("%d records, truncated %v; want all 40", len(m.Answer), m.Truncated)
		}
		if udp, tcp := upstream.count("udp", "big.example.", dns.TypeTXT), upstream.count("tcp", "big.example.", dns.TypeTXT); udp != 1 || tcp != 1 {
			t.Errorf("upstream asked %d times over UDP and %d over TCP, want once each", udp, tcp)
		}
		// A client without EDNS0 takes 512 bytes over UDP.
		m = ask(t, "udp", "big.example.", dns.TypeTXT, 0)
		if !m.Truncated || len(m.Answer) >= 40 {
			t.Errorf("512-byte client: %d records, truncated %v", len(m.Answer), m.Truncated)
		}
		if m := ask(t, "tcp", "big.example.", dns.TypeTXT, 0); len(m.Answer) != 40 || m.Truncated {
			t.Errorf("over TCP: %d records, truncated %v", len(m.Answer), m.Truncated)
		}
	})
	t.Run("large headless answer truncated over UDP, whole over TCP", func(t *testing.T) {
		m := ask(t, "udp", "many.default.svc.cluster.local.", dns.TypeA, 0)
		if !m.Truncated || len(m.Answer) >= 60 {
			t.Errorf("UDP: %d records, truncated %v", len(m.Answer), m.Truncated)
		}
		m = ask(t, "udp", "many.default.svc.cluster.local.", dns.TypeA, 4096)
		if m.Truncated || len(m.Answer) != 60 {
			t.Errorf("UDP with EDNS0 4096: %d records, truncated %v", len(m.Answer), m.Truncated)
		}
		m = ask(t, "tcp", "many.default.svc.cluster.local.", dns.TypeA, 0)
		if m.Truncated || len(m.Answer) != 60 {
			t.Errorf("TCP: %d records, truncated %v", len(m.Answer), m.Truncated)
		}
	})
	t.Run("ExternalName followed upstream", func(t *testing.T) {
		m := ask(t, "udp", "cdn.default.svc.cluster.local.", dns.TypeA, 0)
		want := []string{"cdn.default.svc.cluster.local. 5 IN CNAME cdn.example.net.", "cdn.example.net. 300 IN A 192.0.2.80"}
		if got := rrStrings(m.Answer); !slices.Equal(got, want) {
			t.Errorf("answer %q, want %q", got, want)
		}
	})
	t.Run("new Service answered", func(t *testing.T) {
		late := makeService("default", "late").clusterIP("10.43.0.77").obj()
		if _, err := client.CoreV1().Services("default").Create(ctx, late, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			m := ask(t, "udp", "late.default.svc.cluster.local.", dns.TypeA, 0)
			if len(m.Answer) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %s after 10 s", rcodeName(m.Rcode))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("bad EDNS version", func(t *testing.T) {
		req := new(dns.Msg)
		req.SetQuestion("kubernetes.default.svc.cluster.local.", dns.TypeA)
		req.SetEdns0(1232, false)
		req.IsEdns0().SetVersion(1)
		m, _, err := (&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(req, addr)
		if err != nil {
			t.Fatal(err)
		}
		if m.Rcode != dns.RcodeBadVers {
			t.Errorf("rcode %s, want BADVERS", rcodeName(m.Rcode))
		}
	})
	// Every question above is counted under CoreDNS's metric names.
	t.Run("metrics", func(t *testing.T) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		sum := func(name string, labels map[string]string) float64 {
			total := 0.0
			for _, f := range families {
				if f.GetName() != name {
					continue
				}
			metric:
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if want, ok := labels[l.GetName()]; ok && l.GetValue() != want {
							continue metric
						}
					}
					if m.GetCounter() != nil {
						total += m.GetCounter().GetValue()
					} else {
						total += float64(m.GetHistogram().GetSampleCount())
					}
				}
			}
			return total
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
		}{
			{"coredns_dns_requests_total", map[string]string{"proto": "udp", "type": "A", "zone": ".", "family": "1"}},
			{"coredns_dns_requests_total", map[string]string{"proto": "tcp"}},
			{"coredns_dns_responses_total", map[string]string{"rcode": "NXDOMAIN"}},
			{"coredns_dns_responses_total", map[string]string{"rcode": "NOERROR"}},
			{"coredns_dns_request_duration_seconds", map[string]string{"type": "A"}},
		} {
			if got := sum(c.name, c.labels); got < 1 {
				t.Errorf("%s%v = %v, want at least 1", c.name, c.labels, got)
			}
		}
		if requests, responses := sum("coredns_dns_requests_total", nil), sum("coredns_dns_responses_total", nil); requests != responses || requests < 10 {
			t.Errorf("%v requests and %v responses counted, want as many of each", requests, responses)
		}
	})
}

func TestNewRejects(t *testing.T) {
	client := fake.NewClientset()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no address", Config{}},
		{"address without port", Config{ListenAddr: "127.0.0.1"}},
		{"bad domain", Config{ListenAddr: "127.0.0.1:0", ClusterDomain: "a..b"}},
		{"TTL under a second", Config{ListenAddr: "127.0.0.1:0", TTL: time.Millisecond}},
		{"upstream not an address", Config{ListenAddr: "127.0.0.1:0", Upstreams: []string{"dns.example"}}},
		{"upstream port out of range", Config{ListenAddr: "127.0.0.1:0", Upstreams: []string{"192.0.2.1:70000"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg, client); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestNewDropsItselfFromUpstreams(t *testing.T) {
	s, err := New(Config{ListenAddr: "10.0.0.1:53", Upstreams: []string{"10.0.0.1", "192.0.2.1", "192.0.2.2:5353"}}, fake.NewClientset())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "192.0.2.2:5353"}; !slices.Equal(s.cfg.Upstreams, want) {
		t.Errorf("upstreams %q, want %q", s.cfg.Upstreams, want)
	}
}
