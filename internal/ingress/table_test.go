package ingress

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	exact  = networkingv1.PathTypeExact
	prefix = networkingv1.PathTypePrefix
	impl   = networkingv1.PathTypeImplementationSpecific
)

// describe names where a match leads: "ns/ingress service:port", or "404".
func describe(r *Route) string {
	if r == nil {
		return "404"
	}
	return r.Source.String() + " " + r.Backend.Service + ":" + r.Backend.Port
}

func TestClassSelection(t *testing.T) {
	tests := []struct {
		name         string
		ing          *networkingv1.Ingress
		classes      []*networkingv1.IngressClass
		defaultClass bool
		want         bool
	}{
		{"class skiff", makeIngress("ns", "i").obj(), nil, false, true},
		{"other class", makeIngress("ns", "i").class("nginx").obj(), []*networkingv1.IngressClass{makeClass(ClassName, true)}, false, false},
		{"no class, skiff is default", makeIngress("ns", "i").noClass().obj(), []*networkingv1.IngressClass{makeClass(ClassName, true)}, false, true},
		{"no class, skiff not default", makeIngress("ns", "i").noClass().obj(), []*networkingv1.IngressClass{makeClass(ClassName, false)}, false, false},
		{"no class, another class default", makeIngress("ns", "i").noClass().obj(), []*networkingv1.IngressClass{makeClass("nginx", true)}, false, false},
		{"no class, State.DefaultClass", makeIngress("ns", "i").noClass().obj(), nil, true, true},
		{"legacy annotation skiff", makeIngress("ns", "i").noClass().annotate(annLegacyClass, "skiff").obj(), nil, false, true},
		{"legacy annotation other, skiff default", makeIngress("ns", "i").noClass().annotate(annLegacyClass, "nginx").obj(), []*networkingv1.IngressClass{makeClass(ClassName, true)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := Build(State{Ingresses: []*networkingv1.Ingress{tt.ing}, IngressClasses: tt.classes, DefaultClass: tt.defaultClass})
			if got := tab.Serves(types.NamespacedName{Namespace: "ns", Name: "i"}); got != tt.want {
				t.Errorf("served = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tab := Build(State{Ingresses: []*networkingv1.Ingress{
		makeIngress("ns", "a").
			path("foo.com", "/foo", prefix, "prefix", 80).
			path("foo.com", "/foo", exact, "exact", 80).
			path("foo.com", "/", prefix, "root", 80).
			path("foo.com", "/foo/bar/", prefix, "bar", 80).
			path("foo.com", "/impl", impl, "impl", 80).
			path("*.foo.com", "/", prefix, "wild", 80).
			path("*.foo.com", "/x", exact, "wildx", 80).
			path("", "/any", prefix, "any", 80).obj(),
	}})
	tests := []struct{ host, path, want string }{
		{"foo.com", "/foo", "ns/a exact:80"},
		{"foo.com", "/foo/", "ns/a prefix:80"},
		{"foo.com", "/foo/x", "ns/a prefix:80"},
		{"foo.com", "/foobar", "ns/a root:80"},
		{"foo.com", "/foo/bar", "ns/a bar:80"},
		{"foo.com", "/foo/bar/", "ns/a bar:80"},
		{"foo.com", "/foo/bar/baz", "ns/a bar:80"},
		{"foo.com", "/foo/barbaz", "ns/a prefix:80"},
		{"foo.com", "/impl/x", "ns/a impl:80"},
		{"foo.com", "/implx", "ns/a root:80"},
		{"foo.com", "", "ns/a root:80"},
		{"FOO.com:8080", "/foo", "ns/a exact:80"},
		{"foo.com.", "/foo", "ns/a exact:80"},
		{"bar.foo.com", "/", "ns/a wild:80"},
		{"Bar.Foo.Com:443", "/x", "ns/a wildx:80"},
		{"bar.foo.com", "/x/y", "ns/a wild:80"},
		{"baz.bar.foo.com", "/", "404"},
		{"baz.bar.foo.com", "/any/thing", "ns/a any:80"},
		{"other.com", "/any", "ns/a any:80"},
		{"other.com", "/anything", "404"},
		{"[::1]:80", "/any", "ns/a any:80"},
	}
	for _, tt := range tests {
		if got := describe(tab.Match(tt.host, tt.path)); got != tt.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tt.host, tt.path, got, tt.want)
		}
	}
	// foo.com has a "/" rule, so its host-less rules are never reached.
	if got := describe(tab.Match("foo.com", "/any")); got != "ns/a root:80" {
		t.Errorf("Match(foo.com, /any) = %s, want the exact host's / rule", got)
	}
}

func TestDefaultBackend(t *testing.T) {
	ings := []*networkingv1.Ingress{
		makeIngress("ns", "young").age(10).defaultBackend("young-default", 80).obj(),
		makeIngress("ns", "old").defaultBackend("old-default", 80).path("foo.com", "/api", prefix, "api", 80).obj(),
	}
	tab := Build(State{Ingresses: ings})
	tests := []struct{ host, path, want string }{
		{"foo.com", "/api/v1", "ns/old api:80"},
		{"foo.com", "/web", "ns/old old-default:80"},
		{"elsewhere", "/", "ns/old old-default:80"},
	}
	for _, tt := range tests {
		if got := describe(tab.Match(tt.host, tt.path)); got != tt.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tt.host, tt.path, got, tt.want)
		}
	}
	if len(tab.Conflicts) != 1 || tab.Conflicts[0].Ingress.Name != "young" || !strings.Contains(tab.Conflicts[0].Message, "ns/old") {
		t.Errorf("Conflicts = %v, want one for ns/young naming ns/old", tab.Conflicts)
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		name       string
		ings       []*networkingv1.Ingress
		want       string // who serves foo.com /api
		conflicted []string
	}{{
		name: "older wins whatever the order",
		ings: []*networkingv1.Ingress{
			makeIngress("ns", "new").age(5).path("foo.com", "/api", prefix, "new", 80).obj(),
			makeIngress("ns", "old").age(1).path("foo.com", "/api", prefix, "old", 80).obj(),
		},
		want:       "ns/old old:80",
		conflicted: []string{"ns/new"},
	}, {
		name: "same age: namespace/name order",
		ings: []*networkingv1.Ingress{
			makeIngress("b", "x").path("foo.com", "/api", prefix, "bx", 80).obj(),
			makeIngress("a", "y").path("foo.com", "/api", prefix, "ay", 80).obj(),
		},
		want:       "a/y ay:80",
		conflicted: []string{"b/x"},
	}, {
		name: "trailing slash is the same Prefix path",
		ings: []*networkingv1.Ingress{
			makeIngress("ns", "new").age(5).path("foo.com", "/api/", prefix, "new", 80).obj(),
			makeIngress("ns", "old").path("foo.com", "/api", prefix, "old", 80).obj(),
		},
		want:       "ns/old old:80",
		conflicted: []string{"ns/new"},
	}, {
		name: "different path types do not conflict",
		ings: []*networkingv1.Ingress{
			makeIngress("ns", "new").age(5).path("foo.com", "/api", exact, "new", 80).obj(),
			makeIngress("ns", "old").path("foo.com", "/api", prefix, "old", 80).obj(),
		},
		want: "ns/new new:80",
	}, {
		name: "different hosts do not conflict",
		ings: []*networkingv1.Ingress{
			makeIngress("ns", "new").age(5).path("bar.com", "/api", prefix, "new", 80).obj(),
			makeIngress("ns", "old").path("foo.com", "/api", prefix, "old", 80).obj(),
		},
		want: "ns/old old:80",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := Build(State{Ingresses: tt.ings})
			if got := describe(tab.Match("foo.com", "/api")); got != tt.want {
				t.Errorf("foo.com/api goes to %s, want %s", got, tt.want)
			}
			var got []string
			for _, c := range tab.Conflicts {
				if c.Reason != ReasonConflict || c.Message == "" {
					t.Errorf("conflict %v lacks reason or message", c)
				}
				got = append(got, c.Ingress.String())
			}
			if !slices.Equal(got, tt.conflicted) {
				t.Errorf("conflicted = %v, want %v", got, tt.conflicted)
			}
		})
	}
}

func TestBackends(t *testing.T) {
	in := State{
		Ingresses: []*networkingv1.Ingress{
			makeIngress("ns", "i").
				path("", "/by-name", prefix, "web", "http").
				path("", "/by-number", prefix, "web", 80).
				path("", "/metrics", prefix, "web", 9090).
				path("", "/no-service", prefix, "nope", 80).
				path("", "/no-port", prefix, "web", 81).
				path("", "/no-port-name", prefix, "web", "grpc").
				path("", "/external", prefix, "ext", 80).
				path("", "/empty", prefix, "empty", 80).
				pathTo("", "/resource", prefix, resourceBackend()).obj(),
		},
		Services: []*corev1.Service{
			makeService("ns", "web").port("http", 80).port("metrics", 9090).obj(),
			makeService("ns", "ext").externalName("example.com").obj(),
			makeService("ns", "empty").port("", 80).obj(),
			makeService("other", "web").port("http", 80).obj(),
		},
	}
	in.EndpointSlices = append(in.EndpointSlices,
		makeSlice("ns", "web", "a").port("http", 8080).
			endpoint("10.0.0.1", ptr.To(true), nil).
			endpoint("10.0.0.2", ptr.To(false), nil).
			endpoint("10.0.0.3", nil, nil).
			endpoint("10.0.0.4", ptr.To(true), ptr.To(true)).obj(),
		makeSlice("ns", "web", "b").port("http", 8080).ready("10.0.0.1", "10.0.0.6").obj(),
		makeSlice("ns", "web", "c").port("metrics", 9100).ready("10.0.0.5").obj(),
		makeSlice("other", "web", "a").port("http", 8080).ready("10.9.9.9").obj(),
		makeSlice("ns", "empty", "a").port("", 8081).obj(),
	)
	tab := Build(in)
	tests := []struct {
		path      string
		endpoints string
		missing   string
	}{
		{"/by-name", "10.0.0.1:8080 10.0.0.3:8080 10.0.0.6:8080", ""},
		{"/by-number", "10.0.0.1:8080 10.0.0.3:8080 10.0.0.6:8080", ""},
		{"/metrics", "10.0.0.5:9100", ""},
		{"/no-service", "", "service ns/nope not found"},
		{"/no-port", "", "service ns/web has no port 81"},
		{"/no-port-name", "", "service ns/web has no port grpc"},
		{"/external", "", "service ns/ext is of type ExternalName, which is not supported"},
		{"/empty", "", ""},
	}
	for _, tt := range tests {
		r := tab.Match("any", tt.path)
		if r == nil {
			t.Errorf("%s: no route", tt.path)
			continue
		}
		var eps []string
		for _, e := range r.Backend.Endpoints {
			eps = append(eps, e.String())
		}
		if got := strings.Join(eps, " "); got != tt.endpoints {
			t.Errorf("%s: endpoints %q, want %q", tt.path, got, tt.endpoints)
		}
		if r.Backend.Missing != tt.missing {
			t.Errorf("%s: missing %q, want %q", tt.path, r.Backend.Missing, tt.missing)
		}
	}
	if r := tab.Match("any", "/resource"); r != nil {
		t.Errorf("a resource backend got a route: %s", describe(r))
	}
	var got []string
	for _, p := range tab.Problems {
		got = append(got, p.Reason+": "+p.Message)
	}
	want := []string{
		"BackendNotFound: service ns/nope not found",
		"BackendNotFound: service ns/web has no port 81",
		"BackendNotFound: service ns/web has no port grpc",
		"BackendNotFound: service ns/ext is of type ExternalName, which is not supported",
		"UnsupportedBackend: resource backends are not supported",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTLS(t *testing.T) {
	now := time.Now()
	expiredCert, expiredKey := makeCert(t, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), "old.com")
	futureCert, futureKey := makeCert(t, now.AddDate(1, 0, 0), now.AddDate(2, 0, 0), "future.com")
	in := State{
		Now: now,
		Ingresses: []*networkingv1.Ingress{
			makeIngress("ns", "i").
				tls("foo", "foo.com").
				tls("wild", "*.bar.com").
				tls("expired", "old.com").
				tls("future", "future.com").
				tls("garbage", "garbage.com").
				tls("missing", "missing.com").
				tls("elsewhere", "elsewhere.com").
				tls("", "nosecret.com").
				path("foo.com", "/", prefix, "web", 80).
				path("x.bar.com", "/", prefix, "web", 80).
				path("plain.com", "/", prefix, "web", 80).
				path("nosecret.com", "/", prefix, "web", 80).obj(),
			makeIngress("ns", "no-redirect").annotate(AnnSSLRedirect, "false").path("foo.com", "/open", prefix, "web", 80).obj(),
			makeIngress("ns", "force-redirect").annotate(AnnSSLRedirect, "true").path("plain.com", "/secure", prefix, "web", 80).obj(),
		},
		Secrets: []*corev1.Secret{
			validSecret(t, "ns", "foo", "foo.com"),
			validSecret(t, "ns", "wild", "*.bar.com"),
			makeSecret("ns", "expired", expiredCert, expiredKey),
			makeSecret("ns", "future", futureCert, futureKey),
			makeSecret("ns", "garbage", []byte("not a cert"), []byte("not a key")),
			validSecret(t, "other", "elsewhere", "elsewhere.com"),
		},
	}
	tab := Build(in)
	certs := []struct{ sni, want string }{
		{"foo.com", "foo.com"},
		{"FOO.COM", "foo.com"},
		{"x.bar.com", "*.bar.com"},
		{"y.x.bar.com", ""},
		{"bar.com", ""},
		{"old.com", ""},
		{"future.com", ""},
		{"garbage.com", ""},
		{"missing.com", ""},
		{"elsewhere.com", ""},
		{"unknown.com", ""},
	}
	for _, c := range certs {
		got := ""
		if cert := tab.Certificate(c.sni); cert != nil {
			got = cert.Leaf.Subject.CommonName
		}
		if got != c.want {
			t.Errorf("Certificate(%q) = %q, want %q", c.sni, got, c.want)
		}
	}
	var problems []string
	for _, p := range tab.Problems {
		if p.Reason != ReasonInvalidCertificate {
			continue // the Service web does not exist
		}
		problems = append(problems, p.Message)
	}
	for i, want := range []string{"ns/expired: certificate expired", "ns/future: certificate is not valid before", "ns/garbage:", "ns/missing: not found", "ns/elsewhere: not found"} {
		if i >= len(problems) || !strings.Contains(problems[i], want) {
			t.Errorf("problem %d: %q, want it to contain %q", i, problems, want)
		}
	}
	redirects := []struct {
		host, path string
		want       bool
	}{
		{"foo.com", "/", true},
		{"x.bar.com", "/", true},
		{"plain.com", "/", false},
		{"nosecret.com", "/", true},
		{"foo.com", "/open", false},
		{"plain.com", "/secure", true},
	}
	for _, r := range redirects {
		if got := tab.Match(r.host, r.path).SSLRedirect; got != r.want {
			t.Errorf("%s%s: SSLRedirect %v, want %v", r.host, r.path, got, r.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want Policy
		errs int
	}{
		{"defaults", nil, Policy{Balance: RoundRobin, ReadTimeout: 60 * time.Second}, 0},
		{"least-request", map[string]string{AnnLoadBalance: "least-request"}, Policy{Balance: LeastRequest, ReadTimeout: time.Minute}, 0},
		{"unknown algorithm", map[string]string{AnnLoadBalance: "fastest"}, Policy{Balance: RoundRobin, ReadTimeout: time.Minute}, 1},
		{"hash default key", map[string]string{AnnLoadBalance: "consistent-hash"}, Policy{Balance: ConsistentHash, HashOn: HashClientIP, ReadTimeout: time.Minute}, 0},
		{"hash on header", map[string]string{AnnLoadBalance: "consistent-hash", AnnHashOn: "header:X-User"}, Policy{Balance: ConsistentHash, HashOn: HashHeader, HashName: "X-User", ReadTimeout: time.Minute}, 0},
		{"hash on cookie", map[string]string{AnnLoadBalance: "consistent-hash", AnnHashOn: "cookie:sid"}, Policy{Balance: ConsistentHash, HashOn: HashCookie, HashName: "sid", ReadTimeout: time.Minute}, 0},
		{"hash on nameless header", map[string]string{AnnLoadBalance: "consistent-hash", AnnHashOn: "header"}, Policy{Balance: ConsistentHash, HashOn: HashClientIP, ReadTimeout: time.Minute}, 1},
		{"affinity", map[string]string{AnnAffinity: "cookie"}, Policy{Balance: RoundRobin, AffinityCookie: "skiff-affinity", ReadTimeout: time.Minute}, 0},
		{"affinity named", map[string]string{AnnAffinity: "cookie", AnnAffinityCookie: "route"}, Policy{Balance: RoundRobin, AffinityCookie: "route", ReadTimeout: time.Minute}, 0},
		{"affinity unknown", map[string]string{AnnAffinity: "ip"}, Policy{Balance: RoundRobin, ReadTimeout: time.Minute}, 1},
		{"timeout duration", map[string]string{AnnReadTimeout: "5s"}, Policy{Balance: RoundRobin, ReadTimeout: 5 * time.Second}, 0},
		{"timeout seconds", map[string]string{AnnReadTimeout: "120"}, Policy{Balance: RoundRobin, ReadTimeout: 2 * time.Minute}, 0},
		{"timeout invalid", map[string]string{AnnReadTimeout: "-1s"}, Policy{Balance: RoundRobin, ReadTimeout: time.Minute}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := parsePolicy(tt.ann)
			if got != tt.want {
				t.Errorf("policy %+v, want %+v", got, tt.want)
			}
			if len(errs) != tt.errs {
				t.Errorf("errors %v, want %d", errs, tt.errs)
			}
		})
	}
	tab := Build(State{Ingresses: []*networkingv1.Ingress{
		makeIngress("ns", "i").annotate(AnnLoadBalance, "fastest").annotate(AnnSSLRedirect, "yes please").path("", "/", prefix, "web", 80).obj(),
	}})
	if len(tab.Problems) < 2 || tab.Problems[0].Reason != ReasonInvalidAnnotation || tab.Problems[1].Reason != ReasonInvalidAnnotation {
		t.Errorf("Problems = %v, want two InvalidAnnotation first", tab.Problems)
	}
}

// dump renders a table for the golden file.
func dump(t *Table) string {
	var b strings.Builder
	route := func(r *Route) {
		be := r.Backend
		fmt.Fprintf(&b, "  %-6s %-10s -> %s (%s)", r.PathType, r.Path, be.Name(), r.Source)
		if r.SSLRedirect {
			b.WriteString(" ssl-redirect")
		}
		fmt.Fprintf(&b, "\n    policy: %s\n", be.Policy)
		if be.Missing != "" {
			fmt.Fprintf(&b, "    503: %s\n", be.Missing)
		}
		for _, e := range be.Endpoints {
			fmt.Fprintf(&b, "    endpoint %s\n", e)
		}
	}
	l := t.ports[HTTPPort]
	for _, h := range slices.Sorted(maps.Keys(l.exact)) {
		fmt.Fprintf(&b, "host %s\n", h)
		for _, r := range l.exact[h] {
			route(r)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(l.wildcard)) {
		fmt.Fprintf(&b, "host *.%s\n", h)
		for _, r := range l.wildcard[h] {
			route(r)
		}
	}
	b.WriteString("any host\n")
	for _, r := range l.anyHost {
		route(r)
	}
	if l.fallback != nil {
		b.WriteString("default backend\n")
		route(l.fallback)
	}
	for _, h := range slices.Sorted(maps.Keys(t.ports[HTTPSPort].certs)) {
		fmt.Fprintf(&b, "certificate %s: CN %s\n", h, t.ports[HTTPSPort].certs[h].Leaf.Subject.CommonName)
	}
	for _, s := range t.Served {
		fmt.Fprintf(&b, "served %s\n", s)
	}
	for _, p := range slices.Concat(t.Problems, t.Conflicts) {
		fmt.Fprintf(&b, "problem %s\n", p)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	in := State{
		Now: time.Now(),
		IngressClasses: []*networkingv1.IngressClass{
			makeClass(ClassName, true),
		},
		Ingresses: []*networkingv1.Ingress{
			makeIngress("shop", "storefront").noClass().
				annotate(AnnLoadBalance, "consistent-hash").annotate(AnnHashOn, "cookie:cart").
				tls("shop-tls", "shop.example.com").
				path("shop.example.com", "/", prefix, "web", "http").
				path("shop.example.com", "/api", prefix, "api", 8080).
				path("shop.example.com", "/healthz", exact, "api", 8080).
				defaultBackend("web", "http").obj(),
			makeIngress("shop", "late").age(60).
				annotate(AnnAffinity, "cookie").annotate(AnnReadTimeout, "5s").
				path("shop.example.com", "/api/", prefix, "api-v2", 8080).
				path("*.example.com", "/", prefix, "catchall", 80).
				path("", "/status", impl, "status", 80).obj(),
			makeIngress("shop", "nginx").class("nginx").path("shop.example.com", "/", prefix, "web", 80).obj(),
		},
		Services: []*corev1.Service{
			makeService("shop", "web").port("http", 80).obj(),
			makeService("shop", "api").port("api", 8080).obj(),
			makeService("shop", "catchall").port("", 80).obj(),
		},
		Secrets: []*corev1.Secret{validSecret(t, "shop", "shop-tls", "shop.example.com")},
	}
	in.EndpointSlices = append(in.EndpointSlices,
		makeSlice("shop", "web", "x").port("http", 8080).ready("10.42.0.7", "10.42.1.3").obj(),
		makeSlice("shop", "api", "x").port("api", 9000).ready("10.42.0.9").endpoint("10.42.1.9", ptr.To(false), nil).obj(),
		makeSlice("shop", "catchall", "x").port("", 8081).ready("fd00::5").obj(),
	)
	in.EndpointSlices[2].AddressType = discoveryv1.AddressTypeIPv6
	got := dump(Build(in))
	path := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("table differs from %s (run with -update to accept):\n%s", path, got)
	}
}
