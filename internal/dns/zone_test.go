package dns

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

const tcp, udp = corev1.ProtocolTCP, corev1.ProtocolUDP

// testCluster is the cluster every Lookup case below is asked about.
func testCluster() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	services := []*corev1.Service{
		makeService("default", "kubernetes").clusterIP("10.43.0.1").port("https", tcp, 443).obj(),
		makeService("kube-system", "kube-dns").clusterIP("10.43.0.10").port("dns", udp, 53).port("dns-tcp", tcp, 53).obj(),
		makeService("default", "web").clusterIP("10.43.0.20").port("http", tcp, 80).port("", tcp, 8080).obj(),
		makeService("default", "db").headless().port("pg", tcp, 5432).obj(),
		makeService("default", "empty").headless().obj(),
		makeService("default", "ext").externalName("example.com").obj(),
		makeService("default", "dual").clusterIP("10.43.0.30", "fd00::30").obj(),
		makeService("other", "db6").headless().obj(),
	}
	slices := []*discoveryv1.EndpointSlice{
		makeSlice("default", "web", "a").ready("10.42.0.5", "").notReady("10.42.0.6").port("http", tcp, 8080).obj(),
		makeSlice("default", "db", "a").ready("10.42.0.7", "db-0").unknown("10.42.0.8").notReady("10.42.0.9").port("pg", tcp, 5432).obj(),
		// The same endpoint in a second slice (during a slice update) counts once.
		makeSlice("default", "db", "b").ready("10.42.0.7", "db-0").port("pg", tcp, 5432).obj(),
		makeSlice("other", "db6", "a").ipv6().ready("fd00::42:7", "").obj(),
		// A slice whose Service is gone is ignored.
		makeSlice("default", "gone", "a").ready("10.42.0.99", "").obj(),
	}
	return services, slices
}

func TestLookup(t *testing.T) {
	services, eps := testCluster()
	z := Build("cluster.local", 5, 42, services, eps)

	type want struct {
		notOurs bool
		rcode   int
		answer  []string
		extra   []string
		soa     bool // the authority section is the zone's SOA
	}
	noData := want{rcode: dns.RcodeSuccess, soa: true}
	nxDomain := want{rcode: dns.RcodeNameError, soa: true}
	ok := func(answer ...string) want { return want{rcode: dns.RcodeSuccess, answer: answer} }

	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		want  want
	}{
		{"schema version", "dns-version.cluster.local.", dns.TypeTXT, ok(`dns-version.cluster.local. 5 IN TXT "1.1.0"`)},
		{"ClusterIP A", "kubernetes.default.svc.cluster.local.", dns.TypeA, ok("kubernetes.default.svc.cluster.local. 5 IN A 10.43.0.1")},
		{"ClusterIP without AAAA is NODATA", "kubernetes.default.svc.cluster.local.", dns.TypeAAAA, noData},
		{"name asked in capitals keeps its case", "Kubernetes.DEFAULT.svc.cluster.local.", dns.TypeA, ok("Kubernetes.DEFAULT.svc.cluster.local. 5 IN A 10.43.0.1")},
		{"dual-stack A", "dual.default.svc.cluster.local.", dns.TypeA, ok("dual.default.svc.cluster.local. 5 IN A 10.43.0.30")},
		{"dual-stack AAAA", "dual.default.svc.cluster.local.", dns.TypeAAAA, ok("dual.default.svc.cluster.local. 5 IN AAAA fd00::30")},
		{"unknown service", "nope.default.svc.cluster.local.", dns.TypeA, nxDomain},
		{"service in another namespace", "web.other.svc.cluster.local.", dns.TypeA, nxDomain},
		{"namespace with services exists", "default.svc.cluster.local.", dns.TypeA, noData},
		{"namespace without services", "nons.svc.cluster.local.", dns.TypeA, nxDomain},
		{"svc subdomain", "svc.cluster.local.", dns.TypeA, noData},
		{"pod subdomain", "pod.cluster.local.", dns.TypeA, noData},
		{"unknown name in the zone", "foo.cluster.local.", dns.TypeA, nxDomain},
		{"too deep below a service", "a.b.web.default.svc.cluster.local.", dns.TypeA, nxDomain},

		{"ClusterIP service endpoint by dashed address", "10-42-0-5.web.default.svc.cluster.local.", dns.TypeA, ok("10-42-0-5.web.default.svc.cluster.local. 5 IN A 10.42.0.5")},
		{"not-ready endpoint has no name", "10-42-0-6.web.default.svc.cluster.local.", dns.TypeA, nxDomain},

		{"headless: ready endpoints", "db.default.svc.cluster.local.", dns.TypeA, ok(
			"db.default.svc.cluster.local. 5 IN A 10.42.0.7",
			"db.default.svc.cluster.local. 5 IN A 10.42.0.8")},
		{"headless without endpoints is NODATA", "empty.default.svc.cluster.local.", dns.TypeA, noData},
		{"headless IPv6", "db6.other.svc.cluster.local.", dns.TypeAAAA, ok("db6.other.svc.cluster.local. 5 IN AAAA fd00::42:7")},
		{"headless IPv6 endpoint name", "fd00--42-7.db6.other.svc.cluster.local.", dns.TypeAAAA, ok("fd00--42-7.db6.other.svc.cluster.local. 5 IN AAAA fd00::42:7")},
		{"endpoint hostname", "db-0.db.default.svc.cluster.local.", dns.TypeA, ok("db-0.db.default.svc.cluster.local. 5 IN A 10.42.0.7")},
		{"endpoint hostname AAAA is NODATA", "db-0.db.default.svc.cluster.local.", dns.TypeAAAA, noData},
		{"endpoint with a hostname has no dashed name", "10-42-0-7.db.default.svc.cluster.local.", dns.TypeA, nxDomain},
		{"endpoint without hostname: dashed name", "10-42-0-8.db.default.svc.cluster.local.", dns.TypeA, ok("10-42-0-8.db.default.svc.cluster.local. 5 IN A 10.42.0.8")},
		{"not-ready headless endpoint", "10-42-0-9.db.default.svc.cluster.local.", dns.TypeA, nxDomain},

		{"SRV of a ClusterIP named port", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, want{
			rcode:  dns.RcodeSuccess,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 5 IN A 10.43.0.20"},
		}},
		{"SRV of the service name lists every port", "web.default.svc.cluster.local.", dns.TypeSRV, want{
			rcode: dns.RcodeSuccess,
			answer: []string{
				"web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
				"web.default.svc.cluster.local. 5 IN SRV 0 50 8080 web.default.svc.cluster.local.",
			},
			extra: []string{"web.default.svc.cluster.local. 5 IN A 10.43.0.20"},
		}},
		{"SRV protocol must match", "_http._udp.web.default.svc.cluster.local.", dns.TypeSRV, nxDomain},
		{"SRV of an unknown port", "_https._tcp.web.default.svc.cluster.local.", dns.TypeSRV, nxDomain},
		{"SRV protocol label is an empty non-terminal", "_tcp.web.default.svc.cluster.local.", dns.TypeSRV, noData},
		{"UDP SRV", "_dns._udp.kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, want{
			rcode:  dns.RcodeSuccess,
			answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
			extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.43.0.10"},
		}},
		{"headless SRV: one per ready endpoint", "_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV, want{
			rcode: dns.RcodeSuccess,
			answer: []string{
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-42-0-8.db.default.svc.cluster.local.",
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
			},
			extra: []string{
				"10-42-0-8.db.default.svc.cluster.local. 5 IN A 10.42.0.8",
				"db-0.db.default.svc.cluster.local. 5 IN A 10.42.0.7",
			},
		}},

		{"ExternalName A is its CNAME", "ext.default.svc.cluster.local.", dns.TypeA, ok("ext.default.svc.cluster.local. 5 IN CNAME example.com.")},
		{"ExternalName CNAME", "ext.default.svc.cluster.local.", dns.TypeCNAME, ok("ext.default.svc.cluster.local. 5 IN CNAME example.com.")},

		{"pod A", "10-42-0-5.default.pod.cluster.local.", dns.TypeA, ok("10-42-0-5.default.pod.cluster.local. 5 IN A 10.42.0.5")},
		{"pod in any namespace", "10-42-3-4.anything.pod.cluster.local.", dns.TypeA, ok("10-42-3-4.anything.pod.cluster.local. 5 IN A 10.42.3.4")},
		{"pod AAAA of an IPv4 pod is NODATA", "10-42-0-5.default.pod.cluster.local.", dns.TypeAAAA, noData},
		{"IPv6 pod", "fd00--5.default.pod.cluster.local.", dns.TypeAAAA, ok("fd00--5.default.pod.cluster.local. 5 IN AAAA fd00::5")},
		{"pod name that is no address", "web-0.default.pod.cluster.local.", dns.TypeA, nxDomain},
		{"pod name without a namespace", "10-42-0-5.pod.cluster.local.", dns.TypeA, nxDomain},

		{"PTR of a ClusterIP", "20.0.43.10.in-addr.arpa.", dns.TypePTR, ok("20.0.43.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.")},
		{"PTR of a ClusterIP endpoint", "5.0.42.10.in-addr.arpa.", dns.TypePTR, ok("5.0.42.10.in-addr.arpa. 5 IN PTR 10-42-0-5.web.default.svc.cluster.local.")},
		{"PTR of a headless endpoint names the endpoint", "7.0.42.10.in-addr.arpa.", dns.TypePTR, ok("7.0.42.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local.")},
		{"PTR of an IPv6 ClusterIP", "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR,
			ok("0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.default.svc.cluster.local.")},
		{"PTR of an unknown address goes upstream", "1.1.1.1.in-addr.arpa.", dns.TypePTR, want{notOurs: true}},
		{"PTR of a not-ready endpoint goes upstream", "6.0.42.10.in-addr.arpa.", dns.TypePTR, want{notOurs: true}},

		{"apex SOA", "cluster.local.", dns.TypeSOA, ok("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5")},
		{"apex NS", "cluster.local.", dns.TypeNS, want{
			rcode:  dns.RcodeSuccess,
			answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 10.43.0.10"},
		}},
		{"apex A is NODATA", "cluster.local.", dns.TypeA, noData},
		{"name server address", "ns.dns.cluster.local.", dns.TypeA, ok("ns.dns.cluster.local. 5 IN A 10.43.0.10")},

		{"outside the zone", "example.com.", dns.TypeA, want{notOurs: true}},
		{"a suffix that is no subdomain", "xcluster.local.", dns.TypeA, want{notOurs: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ours := z.Lookup(dns.Question{Name: tc.qname, Qtype: tc.qtype, Qclass: dns.ClassINET})
			if ours == tc.want.notOurs {
				t.Fatalf("Lookup reported ours=%v, want %v", ours, !tc.want.notOurs)
			}
			if !ours {
				return
			}
			if a.Rcode != tc.want.rcode {
				t.Errorf("rcode %s, want %s", rcodeName(a.Rcode), rcodeName(tc.want.rcode))
			}
			if got := sorted(rrStrings(a.Answer)); !slices.Equal(got, sorted(tc.want.answer)) {
				t.Errorf("answer\n got %q\nwant %q", got, sorted(tc.want.answer))
			}
			if got := sorted(rrStrings(a.Extra)); !slices.Equal(got, sorted(tc.want.extra)) {
				t.Errorf("extra\n got %q\nwant %q", got, sorted(tc.want.extra))
			}
			gotSOA := len(a.Authority) == 1 && a.Authority[0].Header().Rrtype == dns.TypeSOA
			if gotSOA != tc.want.soa || (!tc.want.soa && len(a.Authority) > 0) {
				t.Errorf("authority %q, want the SOA: %v", rrStrings(a.Authority), tc.want.soa)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

func TestLookupOtherDomain(t *testing.T) {
	services, eps := testCluster()
	z := Build("Corp.Example.", 30, 1, services, eps)
	if z.Origin() != "corp.example." {
		t.Errorf("origin %q", z.Origin())
	}
	a, ok := z.Lookup(dns.Question{Name: "kubernetes.default.svc.corp.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	if !ok || a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 || a.Answer[0].Header().Ttl != 30 {
		t.Fatalf("got %v %+v", ok, a)
	}
	if _, ok := z.Lookup(dns.Question{Name: "kubernetes.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); ok {
		t.Error("cluster.local answered by a corp.example zone")
	}
}

// Lookup hands out copies: changing an answer leaves the zone as it was.
func TestLookupCopies(t *testing.T) {
	services, eps := testCluster()
	z := Build("cluster.local", 5, 1, services, eps)
	q := dns.Question{Name: "kubernetes.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	a, _ := z.Lookup(q)
	a.Answer[0].Header().Ttl = 1000
	a.Answer[0].(*dns.A).A[0] = 99
	b, _ := z.Lookup(q)
	if got := rrStrings(b.Answer); got[0] != "kubernetes.default.svc.cluster.local. 5 IN A 10.43.0.1" {
		t.Errorf("zone changed through an answer: %q", got)
	}
}

func TestLookupClass(t *testing.T) {
	z := Build("cluster.local", 5, 1, nil, nil)
	a, ok := z.Lookup(dns.Question{Name: "dns-version.cluster.local.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS})
	if !ok || a.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS class: ours=%v rcode=%s, want REFUSED", ok, rcodeName(a.Rcode))
	}
}

func TestBuildClusterset(t *testing.T) {
	derived := makeService("shop", "derived-cart").clusterIP("10.43.0.77").port("http", tcp, 80).obj()
	derived.Labels = map[string]string{LabelMultiClusterService: "cart"}
	bad := makeService("shop", "derived-x").clusterIP("10.43.0.78").obj()
	bad.Labels = map[string]string{LabelMultiClusterService: "a.b"}
	plain := makeService("shop", "web").clusterIP("10.43.0.79").obj()
	z := BuildClusterset(5, 1, []*corev1.Service{derived, bad, plain})

	a, ok := z.Lookup(dns.Question{Name: "cart.shop.svc.clusterset.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	if !ok || a.Rcode != dns.RcodeSuccess || !slices.Equal(rrStrings(a.Answer), []string{"cart.shop.svc.clusterset.local. 5 IN A 10.43.0.77"}) {
		t.Fatalf("cart: ok=%v rcode=%s answer=%v", ok, rcodeName(a.Rcode), rrStrings(a.Answer))
	}
	a, _ = z.Lookup(dns.Question{Name: "_http._tcp.cart.shop.svc.clusterset.local.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET})
	if len(a.Answer) != 1 || a.Answer[0].(*dns.SRV).Port != 80 {
		t.Errorf("SRV: %v", rrStrings(a.Answer))
	}
	for _, name := range []string{"web.shop.svc.clusterset.local.", "derived-cart.shop.svc.clusterset.local.", "a.b.shop.svc.clusterset.local."} {
		if a, ok := z.Lookup(dns.Question{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}); !ok || a.Rcode != dns.RcodeNameError {
			t.Errorf("%s: ok=%v rcode=%s, want NXDOMAIN", name, ok, rcodeName(a.Rcode))
		}
	}
	if _, ok := z.Lookup(dns.Question{Name: "cart.shop.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); ok {
		t.Error("the clusterset zone answered a cluster.local name")
	}
}
