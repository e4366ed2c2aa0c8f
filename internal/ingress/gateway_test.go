package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
)

func makeGatewayClass(name, controller string) *gwv1.GatewayClass {
	return &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec:       gwv1.GatewayClassSpec{ControllerName: gwv1.GatewayController(controller)},
	}
}

type gatewayBuilder struct{ g gwv1.Gateway }

func makeGateway(namespace, name string) *gatewayBuilder {
	return &gatewayBuilder{gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 2, CreationTimestamp: metav1.NewTime(epoch)},
		Spec:       gwv1.GatewaySpec{GatewayClassName: GatewayClassName},
	}}
}

func (b *gatewayBuilder) class(c string) *gatewayBuilder {
	b.g.Spec.GatewayClassName = gwv1.ObjectName(c)
	return b
}

func (b *gatewayBuilder) age(s int) *gatewayBuilder {
	b.g.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(s) * time.Second))
	return b
}

// listener adds a listener; host "" leaves its hostname unset.
func (b *gatewayBuilder) listener(name string, proto gwv1.ProtocolType, port int32, host string) *gatewayBuilder {
	l := gwv1.Listener{Name: gwv1.SectionName(name), Protocol: proto, Port: gwv1.PortNumber(port)}
	if host != "" {
		l.Hostname = ptr.To(gwv1.Hostname(host))
	}
	b.g.Spec.Listeners = append(b.g.Spec.Listeners, l)
	return b
}

// from sets the last listener's allowedRoutes namespaces.
func (b *gatewayBuilder) from(f gwv1.FromNamespaces) *gatewayBuilder {
	l := &b.g.Spec.Listeners[len(b.g.Spec.Listeners)-1]
	l.AllowedRoutes = &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr.To(f)}}
	return b
}

// cert sets the last listener's certificate Secret.
func (b *gatewayBuilder) cert(namespace, secret string) *gatewayBuilder {
	l := &b.g.Spec.Listeners[len(b.g.Spec.Listeners)-1]
	ref := gwv1.SecretObjectReference{Name: gwv1.ObjectName(secret)}
	if namespace != "" {
		ref.Namespace = ptr.To(gwv1.Namespace(namespace))
	}
	l.TLS = &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{ref}}
	return b
}

func (b *gatewayBuilder) obj() *gwv1.Gateway { return &b.g }

type routeBuilder struct{ r gwv1.HTTPRoute }

func makeRoute(namespace, name string) *routeBuilder {
	return &routeBuilder{gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 3, CreationTimestamp: metav1.NewTime(epoch)},
	}}
}

func (b *routeBuilder) age(s int) *routeBuilder {
	b.r.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(s) * time.Second))
	return b
}

// parent attaches the route to Gateway ns/name, listener section when set.
func (b *routeBuilder) parent(namespace, name, section string) *routeBuilder {
	ref := gwv1.ParentReference{Name: gwv1.ObjectName(name)}
	if namespace != "" {
		ref.Namespace = ptr.To(gwv1.Namespace(namespace))
	}
	if section != "" {
		ref.SectionName = ptr.To(gwv1.SectionName(section))
	}
	b.r.Spec.ParentRefs = append(b.r.Spec.ParentRefs, ref)
	return b
}

// service attaches the route to Service ns/name (GAMMA): ns "" is the
// route's own, port 0 and section "" select every port.
func (b *routeBuilder) service(namespace, name string, port int32, section string) *routeBuilder {
	ref := gwv1.ParentReference{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: gwv1.ObjectName(name)}
	if namespace != "" {
		ref.Namespace = ptr.To(gwv1.Namespace(namespace))
	}
	if port != 0 {
		ref.Port = ptr.To(gwv1.PortNumber(port))
	}
	if section != "" {
		ref.SectionName = ptr.To(gwv1.SectionName(section))
	}
	b.r.Spec.ParentRefs = append(b.r.Spec.ParentRefs, ref)
	return b
}

func (b *routeBuilder) hosts(hs ...string) *routeBuilder {
	for _, h := range hs {
		b.r.Spec.Hostnames = append(b.r.Spec.Hostnames, gwv1.Hostname(h))
	}
	return b
}

// rule adds a rule with one match and backends given as "svc" or
// "ns/svc", each weighted by weights (default 1).
func (b *routeBuilder) rule(m gwv1.HTTPRouteMatch, backends []string, weights ...int32) *routeBuilder {
	r := gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{m}}
	for i, be := range backends {
		ref := gwv1.HTTPBackendRef{}
		ref.Port = ptr.To(gwv1.PortNumber(80))
		if ns, name, ok := strings.Cut(be, "/"); ok {
			ref.Namespace = ptr.To(gwv1.Namespace(ns))
			ref.Name = gwv1.ObjectName(name)
		} else {
			ref.Name = gwv1.ObjectName(be)
		}
		if i < len(weights) {
			ref.Weight = ptr.To(weights[i])
		}
		r.BackendRefs = append(r.BackendRefs, ref)
	}
	b.r.Spec.Rules = append(b.r.Spec.Rules, r)
	return b
}

// filter adds f to the last rule.
func (b *routeBuilder) filter(f gwv1.HTTPRouteFilter) *routeBuilder {
	r := &b.r.Spec.Rules[len(b.r.Spec.Rules)-1]
	r.Filters = append(r.Filters, f)
	return b
}

func (b *routeBuilder) obj() *gwv1.HTTPRoute { return &b.r }

func prefixMatch(p string) gwv1.HTTPRouteMatch {
	return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To(p)}}
}

func exactMatch(p string) gwv1.HTTPRouteMatch {
	return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchExact), Value: ptr.To(p)}}
}

// gatewayState is a State with the skiff class, the given objects, and
// Services svc-a, svc-b (namespace ns) and svc-x (namespace other), port 80.
func gatewayState(gws []*gwv1.Gateway, routes []*gwv1.HTTPRoute) State {
	return State{
		GatewayClasses: []*gwv1.GatewayClass{
			makeGatewayClass(GatewayClassName, GatewayControllerName),
			makeGatewayClass("other", "example.com/other"),
		},
		Gateways:         gws,
		HTTPRoutes:       routes,
		GatewayAddresses: []string{"10.0.0.2", "10.0.0.1"},
		Services: []*corev1.Service{
			makeService("ns", "svc-a").port("http", 80).obj(),
			makeService("ns", "svc-b").port("http", 80).obj(),
			makeService("other", "svc-x").port("http", 80).obj(),
		},
		Namespaces: []*corev1.Namespace{
			{ObjectMeta: metav1.ObjectMeta{Name: "ns"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "x"}}},
		},
		Now: time.Now(),
	}
}

func findCondition(cs []metav1.Condition, typ string) metav1.Condition {
	for _, c := range cs {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "absent"}
}

// wantCondition checks a condition's status and reason.
func wantCondition(t *testing.T, what string, cs []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := findCondition(cs, typ)
	if c.Status != status || c.Reason != reason {
		t.Errorf("%s %s = %s/%s (%q), want %s/%s", what, typ, c.Status, c.Reason, c.Message, status, reason)
	}
}

func TestGatewayStatus(t *testing.T) {
	in := gatewayState(
		[]*gwv1.Gateway{
			makeGateway("ns", "gw").
				listener("http", gwv1.HTTPProtocolType, 80, "").
				listener("web", gwv1.HTTPProtocolType, 8080, "*.example.com").from(gwv1.NamespacesFromAll).
				listener("https", gwv1.HTTPSProtocolType, 443, "secure.example.com").cert("", "tls").
				listener("nocert", gwv1.HTTPSProtocolType, 8443, "").cert("", "missing").
				listener("quic", gwv1.ProtocolType("example.com/quic"), 9000, "").
				listener("clash", gwv1.HTTPSProtocolType, 80, "x.example.com").cert("", "tls").obj(),
			makeGateway("ns", "younger").age(10).listener("dup", gwv1.HTTPProtocolType, 8080, "*.example.com").obj(),
			makeGateway("ns", "foreign").class("other").listener("http", gwv1.HTTPProtocolType, 80, "").obj(),
		},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "ok").parent("", "gw", "http").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "both").parent("", "gw", "").hosts("a.example.com").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "nosection").parent("", "gw", "nope").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("other", "samens").parent("ns", "gw", "http").rule(prefixMatch("/"), []string{"svc-x"}).obj(),
			makeRoute("other", "crossok").parent("ns", "gw", "web").hosts("b.example.com").rule(prefixMatch("/"), []string{"svc-x"}).obj(),
			makeRoute("ns", "nohost").parent("", "gw", "web").hosts("other.org").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "missing").parent("", "gw", "http").rule(prefixMatch("/m"), []string{"nosuch"}).obj(),
			makeRoute("ns", "cross").parent("", "gw", "http").rule(prefixMatch("/x"), []string{"other/svc-x"}).obj(),
			makeRoute("ns", "foreign").parent("", "foreign", "").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			// A listener without its certificate takes (and counts) routes
			// it cannot serve.
			makeRoute("ns", "to-nocert").parent("", "gw", "nocert").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
		})
	in.Secrets = []*corev1.Secret{validSecret(t, "ns", "tls", "secure.example.com", "x.example.com")}
	tab := Build(in)
	st := tab.Gateway

	wantCondition(t, "class skiff", st.Classes[GatewayClassName], "Accepted", "True", "Accepted")
	if _, ok := st.Classes["other"]; ok {
		t.Error("the class of another controller got a status")
	}
	gs := st.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	if gs == nil {
		t.Fatal("no status for ns/gw")
	}
	wantCondition(t, "gw", gs.Conditions, "Accepted", "True", "ListenersNotValid")
	wantCondition(t, "gw", gs.Conditions, "Programmed", "True", "Programmed")
	if len(gs.Addresses) != 2 || gs.Addresses[0].Value != "10.0.0.2" {
		t.Errorf("addresses = %v, want the two node addresses", gs.Addresses)
	}
	ls := map[string]gwv1.ListenerStatus{}
	for _, l := range gs.Listeners {
		ls[string(l.Name)] = l
		if c := findCondition(l.Conditions, "Accepted"); c.ObservedGeneration != 2 {
			t.Errorf("listener %s observedGeneration = %d, want 2", l.Name, c.ObservedGeneration)
		}
	}
	wantCondition(t, "listener http", ls["http"].Conditions, "Programmed", "True", "Programmed")
	wantCondition(t, "listener https", ls["https"].Conditions, "ResolvedRefs", "True", "ResolvedRefs")
	wantCondition(t, "listener nocert", ls["nocert"].Conditions, "ResolvedRefs", "False", "InvalidCertificateRef")
	wantCondition(t, "listener nocert", ls["nocert"].Conditions, "Programmed", "False", "Invalid")
	wantCondition(t, "listener quic", ls["quic"].Conditions, "Accepted", "False", "UnsupportedProtocol")
	wantCondition(t, "listener clash", ls["clash"].Conditions, "Conflicted", "True", "ProtocolConflict")
	for name, want := range map[string]int32{"http": 4, "web": 2, "https": 0, "nocert": 2} {
		if got := ls[name].AttachedRoutes; got != want {
			t.Errorf("listener %s attachedRoutes = %d, want %d", name, got, want)
		}
	}
	young := st.Gateways[types.NamespacedName{Namespace: "ns", Name: "younger"}]
	wantCondition(t, "younger listener dup", young.Listeners[0].Conditions, "Conflicted", "True", "HostnameConflict")
	wantCondition(t, "younger", young.Conditions, "Accepted", "False", "ListenersNotValid")
	if _, ok := st.Gateways[types.NamespacedName{Namespace: "ns", Name: "foreign"}]; ok {
		t.Error("a Gateway of another class got a status")
	}

	route := func(ns, name string) []metav1.Condition {
		ps := st.Routes[types.NamespacedName{Namespace: ns, Name: name}]
		if len(ps) != 1 {
			t.Fatalf("route %s/%s has %d parent statuses, want 1", ns, name, len(ps))
		}
		if ps[0].ControllerName != GatewayControllerName {
			t.Errorf("route %s/%s controllerName = %q", ns, name, ps[0].ControllerName)
		}
		return ps[0].Conditions
	}
	wantCondition(t, "route ok", route("ns", "ok"), "Accepted", "True", "Accepted")
	wantCondition(t, "route ok", route("ns", "ok"), "ResolvedRefs", "True", "ResolvedRefs")
	wantCondition(t, "route both", route("ns", "both"), "Accepted", "True", "Accepted")
	wantCondition(t, "route nosection", route("ns", "nosection"), "Accepted", "False", "NoMatchingParent")
	wantCondition(t, "route samens", route("other", "samens"), "Accepted", "False", "NotAllowedByListeners")
	wantCondition(t, "route crossok", route("other", "crossok"), "Accepted", "True", "Accepted")
	wantCondition(t, "route nohost", route("ns", "nohost"), "Accepted", "False", "NoMatchingListenerHostname")
	wantCondition(t, "route missing", route("ns", "missing"), "ResolvedRefs", "False", "BackendNotFound")
	wantCondition(t, "route missing", route("ns", "missing"), "Accepted", "True", "Accepted")
	wantCondition(t, "route cross", route("ns", "cross"), "ResolvedRefs", "False", "RefNotPermitted")
	if _, ok := st.Routes[types.NamespacedName{Namespace: "ns", Name: "foreign"}]; ok {
		t.Error("a route of another controller's Gateway got a status")
	}

	// A ReferenceGrant in the Service's namespace resolves the cross
	// reference.
	in.ReferenceGrants = []*gwv1.ReferenceGrant{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "allow"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "ns"}},
			To:   []gwv1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
		},
	}}
	st = Build(in).Gateway
	wantCondition(t, "route cross with grant", route("ns", "cross"), "ResolvedRefs", "True", "ResolvedRefs")

	// Certificates by SNI on the HTTPS listener's port.
	if c := tab.CertificateFor(443, "secure.example.com"); c == nil {
		t.Error("no certificate for secure.example.com on port 443")
	}
	if got := tab.Ports(); got[443] != ProtoTLS || got[80] != ProtoHTTP || got[8080] != ProtoHTTP || len(got) != 3 {
		t.Errorf("Ports() = %v, want 80 plain, 443 secure and 8080 plain", got)
	}
}

func request(method, host, target string, hdr ...string) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	r := &http.Request{Method: method, Host: host, URL: u, Header: http.Header{}}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestGatewayMatchPrecedence(t *testing.T) {
	hdr := func(name, v string) gwv1.HTTPRouteMatch {
		m := prefixMatch("/")
		m.Headers = []gwv1.HTTPHeaderMatch{{Name: gwv1.HTTPHeaderName(name), Value: v}}
		return m
	}
	both := hdr("X-A", "1")
	both.Headers = append(both.Headers, gwv1.HTTPHeaderMatch{Name: "X-B", Value: "2"})
	post := prefixMatch("/")
	post.Method = ptr.To(gwv1.HTTPMethodPost)
	query := prefixMatch("/")
	query.QueryParams = []gwv1.HTTPQueryParamMatch{{Name: "v", Value: "2"}}
	re := gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchRegularExpression), Value: ptr.To(`/re/[0-9]+`)}}
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "root").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "api").rule(prefixMatch("/api"), []string{"svc-a"}).obj(),
			makeRoute("ns", "exact").rule(exactMatch("/api/v1"), []string{"svc-a"}).obj(),
			makeRoute("ns", "long").rule(prefixMatch("/api/v1/long"), []string{"svc-a"}).obj(),
			makeRoute("ns", "one-header").rule(hdr("X-A", "1"), []string{"svc-a"}).obj(),
			makeRoute("ns", "two-headers").rule(both, []string{"svc-a"}).obj(),
			makeRoute("ns", "post").rule(post, []string{"svc-a"}).obj(),
			makeRoute("ns", "query").rule(query, []string{"svc-a"}).obj(),
			makeRoute("ns", "regex").rule(re, []string{"svc-a"}).obj(),
			makeRoute("ns", "b-younger").age(5).hosts("*.example.com").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "a-older").age(1).hosts("*.example.com").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "deep").hosts("*.deep.example.com").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
		})
	for _, r := range in.HTTPRoutes {
		r.Spec.ParentRefs = []gwv1.ParentReference{{Name: "gw"}}
	}
	tab := Build(in)
	for _, tt := range []struct {
		req  *http.Request
		want string
	}{
		{request("GET", "any", "/"), "root"},
		{request("GET", "any", "/api/x"), "api"},
		{request("GET", "any", "/apix"), "root"},
		{request("GET", "any", "/api/v1"), "exact"},
		{request("GET", "any", "/api/v1/long/x"), "long"},
		{request("GET", "any", "/", "X-A", "1"), "one-header"},
		{request("GET", "any", "/", "X-A", "1", "X-B", "2"), "two-headers"},
		{request("POST", "any", "/", "X-A", "1", "X-B", "2"), "post"},
		{request("GET", "any", "/?v=2"), "query"},
		{request("GET", "any", "/?v=3"), "root"},
		{request("GET", "any", "/re/42"), "regex"},
		{request("GET", "any", "/re/x"), "root"},
		{request("GET", "a.example.com", "/"), "a-older"},
		{request("GET", "a.b.example.com", "/"), "a-older"},
		{request("GET", "x.deep.example.com", "/"), "deep"},
		{request("GET", "example.com", "/"), "root"},
	} {
		got := "nothing"
		if r := tab.MatchRequest(80, tt.req); r != nil {
			got = r.Source.Name
		}
		if got != tt.want {
			t.Errorf("%s %s%s %v = %s, want %s", tt.req.Method, tt.req.Host, tt.req.URL, tt.req.Header, got, tt.want)
		}
	}
	if r := tab.MatchRequest(8080, request("GET", "any", "/")); r != nil {
		t.Errorf("a request on an unserved port matched %s", r.Source)
	}
}

func TestIntersectHost(t *testing.T) {
	for _, tt := range []struct {
		listener, route, want string
		ok                    bool
	}{
		{"", "a.com", "a.com", true},
		{"a.com", "", "a.com", true},
		{"a.com", "a.com", "a.com", true},
		{"a.com", "b.com", "", false},
		{"*.a.com", "x.y.a.com", "x.y.a.com", true},
		{"*.a.com", "a.com", "", false},
		{"x.a.com", "*.a.com", "x.a.com", true},
		{"*.a.com", "*.b.a.com", "*.b.a.com", true},
		{"*.b.a.com", "*.a.com", "*.b.a.com", true},
		{"*.a.com", "*.b.com", "", false},
	} {
		got, ok := intersectHost(tt.listener, tt.route)
		if got != tt.want || ok != tt.ok {
			t.Errorf("intersectHost(%q, %q) = %q, %v; want %q, %v", tt.listener, tt.route, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGatewayProxy(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	echo := func(name string) netip.AddrPort {
		return upstream(t, name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream-Host", r.Host)
			w.Header().Set("X-Upstream-Path", r.URL.RequestURI())
			w.Header().Set("X-Seen", r.Header.Get("X-Added")+"|"+r.Header.Get("X-Gone"))
			w.Header().Set("X-Drop", "me")
			w.Write([]byte(name))
		})
	}
	a, b := echo("a"), echo("b")
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "split").parent("", "gw", "").hosts("split.test").rule(prefixMatch("/"), []string{"svc-a", "svc-b"}, 3, 1).obj(),
			makeRoute("ns", "mod").parent("", "gw", "").hosts("mod.test").rule(prefixMatch("/old"), []string{"svc-a"}).
				filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
					Set: []gwv1.HTTPHeader{{Name: "X-Added", Value: "yes"}}, Remove: []string{"X-Gone"}}}).
				filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
					Add: []gwv1.HTTPHeader{{Name: "X-Resp", Value: "r"}}, Remove: []string{"X-Drop"}}}).
				filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{
					Hostname: ptr.To(gwv1.PreciseHostname("internal.test")),
					Path:     &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/new")}}}).obj(),
			makeRoute("ns", "redirect").parent("", "gw", "").hosts("redirect.test").rule(prefixMatch("/from"), nil).
				filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{
					Scheme: ptr.To("https"), Hostname: ptr.To(gwv1.PreciseHostname("example.org")),
					Path:       &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/to")},
					StatusCode: ptr.To(301)}}).obj(),
			makeRoute("ns", "broken").parent("", "gw", "").hosts("broken.test").rule(prefixMatch("/"), []string{"svc-a", "nosuch"}).obj(),
		})
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", a), sliceFor("ns", "svc-b", b))
	f.p.SetTable(Build(in))

	// Weights 3:1 over eight requests: exactly six and two.
	count := map[string]int{}
	for range 8 {
		_, body := f.get(t, "split.test", "/")
		count[body]++
	}
	if count["a"] != 6 || count["b"] != 2 {
		t.Errorf("a 3:1 split over 8 requests gave %v, want a:6 b:2", count)
	}

	resp, body := f.do(t, "GET", "mod.test", "/old/page?q=1", http.Header{"X-Gone": {"x"}})
	if body != "a" || resp.Header.Get("X-Upstream-Path") != "/new/page?q=1" || resp.Header.Get("X-Upstream-Host") != "internal.test" {
		t.Errorf("rewrite: upstream saw host %q path %q (body %q), want internal.test /new/page?q=1",
			resp.Header.Get("X-Upstream-Host"), resp.Header.Get("X-Upstream-Path"), body)
	}
	if got := resp.Header.Get("X-Seen"); got != "yes|" {
		t.Errorf("request headers seen upstream = %q, want X-Added set and X-Gone removed", got)
	}
	if resp.Header.Get("X-Resp") != "r" || resp.Header.Get("X-Drop") != "" {
		t.Errorf("response headers: X-Resp %q X-Drop %q, want r and none", resp.Header.Get("X-Resp"), resp.Header.Get("X-Drop"))
	}

	resp, _ = f.get(t, "redirect.test", "/from/x?y=1")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://example.org/to/x?y=1" {
		t.Errorf("redirect: %d %q, want 301 https://example.org/to/x?y=1", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Half the weight names a missing Service: that half gets 500.
	codes := map[int]int{}
	for range 4 {
		resp, _ := f.get(t, "broken.test", "/")
		codes[resp.StatusCode]++
	}
	if codes[200] != 2 || codes[500] != 2 {
		t.Errorf("a rule with one missing backend of two gave %v, want two 200 and two 500", codes)
	}
}

func TestGatewayAddressPool(t *testing.T) {
	in := gatewayState(
		[]*gwv1.Gateway{
			makeGateway("ns", "a").listener("http", gwv1.HTTPProtocolType, 80, "").obj(),
			makeGateway("ns", "b").age(1).listener("http", gwv1.HTTPProtocolType, 80, "").obj(),
			makeGateway("ns", "c").age(2).listener("http", gwv1.HTTPProtocolType, 80, "").obj(),
		},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "to-a").parent("", "a", "").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "to-b").parent("", "b", "").rule(prefixMatch("/"), []string{"svc-b"}).obj(),
		})
	in.GatewayPool = netip.MustParsePrefix("10.44.0.0/30") // .1 and .2 usable
	// b already holds .1 in its status: it keeps it.
	in.Gateways[1].Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "10.44.0.1"}}
	tab := Build(in)
	st := tab.Gateway
	addr := func(name string) string {
		gs := st.Gateways[types.NamespacedName{Namespace: "ns", Name: name}]
		if len(gs.Addresses) == 0 {
			return ""
		}
		return gs.Addresses[0].Value
	}
	if addr("a") != "10.44.0.2" || addr("b") != "10.44.0.1" {
		t.Errorf("addresses a=%q b=%q, want a the lowest free (10.44.0.2) and b its own (10.44.0.1)", addr("a"), addr("b"))
	}
	for _, name := range []string{"a", "b"} {
		gs := st.Gateways[types.NamespacedName{Namespace: "ns", Name: name}]
		wantCondition(t, name, gs.Conditions, "Programmed", "True", "Programmed")
		wantCondition(t, name+" listener", gs.Listeners[0].Conditions, "Conflicted", "False", "NoConflicts")
	}
	c := st.Gateways[types.NamespacedName{Namespace: "ns", Name: "c"}]
	wantCondition(t, "c", c.Conditions, "Programmed", "False", "AddressNotAssigned")

	at := func(ip string) string {
		r := request("GET", "any", "/")
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(ip+":80"))))
		if rt := tab.MatchRequest(80, r); rt != nil {
			return rt.Source.Name
		}
		return "nothing"
	}
	if got := at("10.44.0.2"); got != "to-a" {
		t.Errorf("a request to a's address matched %s, want to-a", got)
	}
	if got := at("10.44.0.1"); got != "to-b" {
		t.Errorf("a request to b's address matched %s, want to-b", got)
	}
	if got := at("192.0.2.1"); got != "nothing" {
		t.Errorf("a request to a node address matched %s; Gateways with their own address are served there only", got)
	}
}

func TestGatewayListenersOnePortManyHostnames(t *testing.T) {
	in := gatewayState([]*gwv1.Gateway{makeGateway("ns", "gw").
		listener("one", gwv1.HTTPProtocolType, 80, "very.specific.com").
		listener("two", gwv1.HTTPProtocolType, 80, "*.wildcard.io").
		listener("three", gwv1.HTTPProtocolType, 80, "").obj()}, nil)
	gs := Build(in).Gateway.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	for _, l := range gs.Listeners {
		wantCondition(t, string(l.Name), l.Conditions, "Conflicted", "False", "NoConflicts")
	}
}

func grpcMethod(service, method string, regex bool) gwv1.GRPCRouteMatch {
	m := &gwv1.GRPCMethodMatch{}
	if service != "" {
		m.Service = ptr.To(service)
	}
	if method != "" {
		m.Method = ptr.To(method)
	}
	if regex {
		m.Type = ptr.To(gwv1.GRPCMethodMatchRegularExpression)
	}
	return gwv1.GRPCRouteMatch{Method: m}
}

func grpcRoute(name string, matches ...gwv1.GRPCRouteMatch) *gwv1.GRPCRoute {
	return &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 4, CreationTimestamp: metav1.NewTime(epoch)},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules: []gwv1.GRPCRouteRule{{Matches: matches, BackendRefs: []gwv1.GRPCBackendRef{{
				BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "svc-a", Port: ptr.To(gwv1.PortNumber(80))}},
			}}}},
		},
	}
}

// TestGRPCRoute: GRPCRoutes attach to HTTP listeners beside HTTPRoutes, get
// their own statuses (an HTTPRoute of the same name does not take them),
// and their method and header matches select gRPC calls by path.
func TestGRPCRoute(t *testing.T) {
	hdr := grpcMethod("pkg.Echo", "", false)
	hdr.Headers = []gwv1.GRPCHeaderMatch{{Name: "x-version", Value: "2"}}
	in := gatewayState(
		[]*gwv1.Gateway{
			makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj(),
			makeGateway("ns", "http-only").listener("http", gwv1.HTTPProtocolType, 8080, "").obj(),
		},
		[]*gwv1.HTTPRoute{makeRoute("ns", "exact").parent("", "gw", "").rule(prefixMatch("/web"), []string{"svc-b"}).obj()})
	in.Gateways[1].Spec.Listeners[0].AllowedRoutes = &gwv1.AllowedRoutes{Kinds: []gwv1.RouteGroupKind{{Kind: KindHTTPRoute}}}
	in.GRPCRoutes = []*gwv1.GRPCRoute{
		grpcRoute("exact", grpcMethod("pkg.Echo", "Echo", false)),
		grpcRoute("service", grpcMethod("pkg.Echo", "", false)),
		grpcRoute("method", grpcMethod("", "Ping", false)),
		grpcRoute("regex", grpcMethod(`pkg\.v[0-9]+\.Echo`, "Echo.*", true)),
		grpcRoute("header", hdr),
		grpcRoute("elsewhere", grpcMethod("pkg.Other", "", false)),
	}
	in.GRPCRoutes[5].Spec.ParentRefs = []gwv1.ParentReference{{Name: "http-only"}}
	tab := Build(in)

	st := tab.Gateway
	for _, name := range []string{"exact", "service", "method", "regex", "header"} {
		ps := st.GRPCRoutes[types.NamespacedName{Namespace: "ns", Name: name}]
		if len(ps) != 1 {
			t.Fatalf("GRPCRoute %s: %d parent statuses, want 1", name, len(ps))
		}
		wantCondition(t, "GRPCRoute "+name, ps[0].Conditions, string(gwv1.RouteConditionAccepted), metav1.ConditionTrue, string(gwv1.RouteReasonAccepted))
	}
	ps := st.GRPCRoutes[types.NamespacedName{Namespace: "ns", Name: "elsewhere"}]
	wantCondition(t, "GRPCRoute on an HTTPRoute-only listener", ps[0].Conditions, string(gwv1.RouteConditionAccepted), metav1.ConditionFalse, string(gwv1.RouteReasonNotAllowedByListeners))
	if ps := st.Routes[types.NamespacedName{Namespace: "ns", Name: "exact"}]; len(ps) != 1 {
		t.Errorf("HTTPRoute exact: %d parent statuses, want its own 1", len(ps))
	}
	gs := st.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	if got := gs.Listeners[0].AttachedRoutes; got != 6 {
		t.Errorf("attachedRoutes = %d, want 6 (5 GRPCRoutes, 1 HTTPRoute)", got)
	}
	if kinds := gs.Listeners[0].SupportedKinds; len(kinds) != 2 || kinds[1].Kind != KindGRPCRoute {
		t.Errorf("supportedKinds = %v, want HTTPRoute and GRPCRoute", kinds)
	}

	for _, tt := range []struct {
		req  *http.Request
		want string
	}{
		{request("POST", "any", "/pkg.Echo/Echo"), "exact"},
		{request("POST", "any", "/pkg.Echo/EchoTwo"), "service"},
		{request("POST", "any", "/pkg.Echo/EchoTwo", "X-Version", "2"), "header"},
		{request("POST", "any", "/other.Svc/Ping"), "method"},
		{request("POST", "any", "/pkg.v2.Echo/EchoMore"), "regex"},
		{request("POST", "any", "/pkg.v2.Echo/Other"), "nothing"},
		{request("POST", "any", "/pkg.EchoX/Echo"), "nothing"},
		{request("GET", "any", "/web/x"), "exact"},
	} {
		got, kind := "nothing", ""
		if r := tab.MatchRequest(80, tt.req); r != nil {
			got, kind = r.Source.Name, r.Kind
		}
		if got != tt.want {
			t.Errorf("%s %s %v = %s, want %s", tt.req.Method, tt.req.URL, tt.req.Header, got, tt.want)
		}
		if tt.want != "nothing" && strings.HasPrefix(tt.req.URL.Path, "/web") != (kind == KindHTTPRoute) {
			t.Errorf("%s matched a %s", tt.req.URL, kind)
		}
	}
}

// TestGatewayListenerIsolation: a request is matched only against the
// routes of the most specific listener its host falls under.
func TestGatewayListenerIsolation(t *testing.T) {
	gw := makeGateway("ns", "gw").listener("any", gwv1.HTTPProtocolType, 80, "").
		listener("wild", gwv1.HTTPProtocolType, 80, "*.example.com").
		listener("abc", gwv1.HTTPProtocolType, 80, "abc.example.com").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, []*gwv1.HTTPRoute{
		makeRoute("ns", "to-any").parent("", "gw", "any").rule(prefixMatch("/any"), []string{"svc-a"}).obj(),
		makeRoute("ns", "to-wild").parent("", "gw", "wild").rule(prefixMatch("/wild"), []string{"svc-a"}).obj(),
		makeRoute("ns", "to-abc").parent("", "gw", "abc").rule(prefixMatch("/abc"), []string{"svc-a"}).obj(),
	})
	tab := Build(in)
	for _, tt := range []struct{ host, path, want string }{
		{"bar.com", "/any", "to-any"},
		{"bar.com", "/wild", "nothing"},
		{"foo.example.com", "/wild", "to-wild"},
		{"foo.example.com", "/any", "nothing"},
		{"abc.example.com", "/abc", "to-abc"},
		{"abc.example.com", "/wild", "nothing"},
		{"abc.example.com", "/any", "nothing"},
	} {
		got := "nothing"
		if r := tab.MatchRequest(80, request("GET", tt.host, tt.path)); r != nil {
			got = r.Source.Name
		}
		if got != tt.want {
			t.Errorf("%s%s = %s, want %s", tt.host, tt.path, got, tt.want)
		}
	}
}

// TestGatewayMisdirected: over TLS, a request whose host falls under
// another HTTPS listener than its connection's server name is misdirected.
func TestGatewayMisdirected(t *testing.T) {
	gw := makeGateway("ns", "gw").
		listener("any", gwv1.HTTPSProtocolType, 443, "").cert("", "c").
		listener("second", gwv1.HTTPSProtocolType, 443, "second.org").cert("", "c").
		listener("wild", gwv1.HTTPSProtocolType, 443, "*.wild.org").cert("", "c").
		listener("four", gwv1.HTTPSProtocolType, 443, "four.wild.org").cert("", "c").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	in.Secrets = append(in.Secrets, validSecret(t, "ns", "c", "*.wild.org", "second.org", "example.org"))
	tab := Build(in)
	for _, tt := range []struct {
		sni, host string
		want      bool
	}{
		{"example.org", "example.org", false},
		{"example.org", "second.org", true},
		{"example.org", "unknown.org", false},
		{"second.org", "example.org", true},
		{"three.wild.org", "five.wild.org", false},
		{"three.wild.org", "four.wild.org", true},
		{"four.wild.org", "four.wild.org", false},
		{"", "second.org", false}, // no SNI: nothing to compare
	} {
		r := request("GET", tt.host, "/")
		r.TLS = &tls.ConnectionState{ServerName: tt.sni}
		if got := tab.Misdirected(443, r); got != tt.want {
			t.Errorf("SNI %q, host %q: misdirected = %v, want %v", tt.sni, tt.host, got, tt.want)
		}
	}
	if r := request("GET", "second.org", "/"); tab.Misdirected(443, r) {
		t.Error("a plain HTTP request was called misdirected")
	}
}

// TestGatewayRetry: an HTTPRoute rule's retry policy sends a request again
// on the codes it names, up to its attempts, with the request's body, to
// the same pod when it is the only one, while a code it does not name and
// a rule without a policy are answered at once.
func TestGatewayRetry(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	var mu sync.Mutex
	failures := map[string]int{} // by request id: failures left
	var bodies []string
	// Each request id fails its first "fail" tries: with the status
	// "code", or by resetting the connection ("reset"), or by answering
	// after the rule's backend timeout ("slow").
	flaky := upstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		mu.Lock()
		bodies = append(bodies, string(b))
		id := q.Get("id")
		if _, ok := failures[id]; !ok {
			failures[id], _ = strconv.Atoi(q.Get("fail"))
		}
		fail := failures[id] > 0
		if fail {
			failures[id]--
		}
		mu.Unlock()
		switch {
		case !fail:
			w.Write([]byte("ok"))
		case q.Get("code") == "reset":
			c, _, _ := w.(http.Hijacker).Hijack()
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		case q.Get("code") == "slow":
			time.Sleep(400 * time.Millisecond)
			w.Write([]byte("late"))
		default:
			code, _ := strconv.Atoi(q.Get("code"))
			w.WriteHeader(code)
		}
	})
	retried := makeRoute("ns", "retried").parent("", "gw", "").hosts("retry.test").rule(prefixMatch("/"), []string{"svc-a"}).obj()
	retried.Spec.Rules[0].Retry = &gwv1.HTTPRouteRetry{
		Codes: []gwv1.HTTPRouteRetryStatusCode{500, 502}, Attempts: ptr.To(2), Backoff: ptr.To(gwv1.Duration("1ms")),
	}
	retried.Spec.Rules[0].Timeouts = &gwv1.HTTPRouteTimeouts{BackendRequest: ptr.To(gwv1.Duration("150ms"))}
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{retried, makeRoute("ns", "plain").parent("", "gw", "").hosts("plain.test").rule(prefixMatch("/"), []string{"svc-a"}).obj()})
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", flaky))
	f.p.SetTable(Build(in))

	for i, tc := range []struct {
		host, query string
		body        string
		want        int
	}{
		{"retry.test", "fail=2&code=500", "", 200},     // two retries allowed
		{"retry.test", "fail=3&code=500", "", 500},     // one too many: the last answer
		{"retry.test", "fail=1&code=503", "", 503},     // not a code of the policy
		{"retry.test", "fail=2&code=502", "data", 200}, // the body again on each try
		{"plain.test", "fail=1&code=500", "", 500},     // no policy, no retry
		{"retry.test", "fail=2&code=reset", "", 200},   // connection errors are retried
		{"retry.test", "fail=20&code=reset", "", 502},  // until the attempts run out
		{"retry.test", "fail=1&code=slow", "", 200},    // so is the backend timeout
	} {
		target := fmt.Sprintf("/?id=%d&%s", i, tc.query)
		var body io.Reader = http.NoBody
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+f.httpAddr+target, body)
		req.Host = tc.host
		mu.Lock()
		bodies = nil
		mu.Unlock()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.host, target, resp.StatusCode, tc.want)
		}
		if tc.body != "" {
			mu.Lock()
			for _, b := range bodies {
				if b != tc.body {
					t.Errorf("%s %s: a try sent body %q, want %q each time (%d tries)", tc.host, target, b, tc.body, len(bodies))
				}
			}
			mu.Unlock()
		}
	}
}

// TestBackendTrafficPolicy: an XBackendTrafficPolicy's sessionPersistence
// pins clients to pods of the Service it targets, for routes whose rules
// set none; a younger policy on the same Service is Conflicted; each has
// the Gateways that route to its Services as ancestors.
func TestBackendTrafficPolicy(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	a1, a2, b1 := upstream(t, "a1", nil), upstream(t, "a2", nil), upstream(t, "b1", nil)
	policy := func(name string, age int, svc, cookie string) *gwxv1a1.XBackendTrafficPolicy {
		return &gwxv1a1.XBackendTrafficPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 3, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))},
			Spec: gwxv1a1.BackendTrafficPolicySpec{
				TargetRefs:         []gwxv1a1.LocalPolicyTargetReference{{Group: "", Kind: "Service", Name: gwv1.ObjectName(svc)}},
				SessionPersistence: &gwv1.SessionPersistence{SessionName: ptr.To(cookie)},
			},
		}
	}
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "a").parent("", "gw", "").hosts("a.test").rule(prefixMatch("/"), []string{"svc-a"}).obj(),
			makeRoute("ns", "b").parent("", "gw", "").hosts("b.test").rule(prefixMatch("/"), []string{"svc-b"}).obj(),
		})
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", a1), sliceFor("ns", "svc-a", a2), sliceFor("ns", "svc-b", b1))
	in.BackendTrafficPolicies = []*gwxv1a1.XBackendTrafficPolicy{policy("younger", 20, "svc-a", "other"), policy("sticky", 10, "svc-a", "pin")}
	tab := Build(in)
	f.p.SetTable(tab)

	resp, first := f.get(t, "a.test", "/")
	c, _ := http.ParseSetCookie(resp.Header.Get("Set-Cookie"))
	if c == nil || c.Name != "pin" {
		t.Fatalf("svc-a's answer set cookie %v, want pin (the older policy's)", resp.Header.Get("Set-Cookie"))
	}
	for range 4 {
		if _, body := f.do(t, http.MethodGet, "a.test", "/", http.Header{"Cookie": {c.Name + "=" + c.Value}}); body != first {
			t.Fatalf("with the pin cookie: %q, then %q", first, body)
		}
	}
	if resp, _ := f.get(t, "b.test", "/"); resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("svc-b, no policy: Set-Cookie %q", resp.Header.Get("Set-Cookie"))
	}

	st := tab.Gateway.BackendTrafficPolicies
	for name, want := range map[string]string{"sticky": string(gwv1.PolicyReasonAccepted), "younger": string(gwv1.PolicyReasonConflicted)} {
		anc := st[types.NamespacedName{Namespace: "ns", Name: name}]
		if len(anc) != 1 || anc[0].AncestorRef.Name != "gw" || len(anc[0].Conditions) != 1 || anc[0].Conditions[0].Reason != want || anc[0].Conditions[0].ObservedGeneration != 3 {
			t.Errorf("policy %s: ancestors %+v, want Gateway gw with reason %s", name, anc, want)
		}
	}
}

// TestGatewayMirrorBody: a RequestMirror filter sends the mirror a copy of
// the request's body (a short one read first, a longer one streamed as the
// backend reads it), while the backend gets it whole.
func TestGatewayMirrorBody(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	got := make(chan string, 10)
	echo := func(name string) netip.AddrPort {
		return upstream(t, name, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- fmt.Sprintf("%s %d %s", name, len(b), b[:min(len(b), 8)])
			w.Write([]byte(name))
		})
	}
	main, mirror := echo("main"), echo("mirror")
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{makeRoute("ns", "m").parent("", "gw", "").hosts("m.test").rule(prefixMatch("/"), []string{"svc-a"}).
			filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: &gwv1.HTTPRequestMirrorFilter{
				BackendRef: gwv1.BackendObjectReference{Name: "svc-b", Port: ptr.To(gwv1.PortNumber(80))}}}).obj()})
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", main), sliceFor("ns", "svc-b", mirror))
	f.p.SetTable(Build(in))

	post := func(body string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+f.httpAddr+"/", strings.NewReader(body))
		req.Host = "m.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	collect := func(n int) map[string]bool {
		seen := map[string]bool{}
		for range n {
			select {
			case s := <-got:
				seen[s] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of %d requests seen: %v", len(seen), n, seen)
			}
		}
		return seen
	}
	post("payload!")
	if seen := collect(2); !seen["main 8 payload!"] || !seen["mirror 8 payload!"] {
		t.Errorf("an 8-byte POST: backends saw %v, want main and mirror with the body", seen)
	}
	big := strings.Repeat("x", 700<<10)
	post(big)
	if seen := collect(2); !seen["main 716800 xxxxxxxx"] || !seen["mirror 716800 xxxxxxxx"] {
		t.Errorf("a 700 KiB POST: backends saw %v, want main and mirror with the whole body", seen)
	}
}

// TestMirrorStreamDropsALaggingMirror: a mirror that does not read its
// streamed body is dropped once it falls maxMirrorLag behind, and the
// request's own reader is never held up by it.
func TestMirrorStreamDropsALaggingMirror(t *testing.T) {
	body := strings.Repeat("y", 3*maxMirrorLag)
	m := &mirrorStream{body: io.NopCloser(strings.NewReader(body))}
	stuck := m.feed() // never read
	fast := m.feed()
	fastGot := make(chan int, 1)
	go func() {
		b, _ := io.ReadAll(fast)
		fastGot <- len(b)
	}()
	done := make(chan int, 1)
	go func() {
		// The request's reader goes no faster than the mirror that keeps
		// up (else it too would fall behind, as it may).
		n, buf := 0, make([]byte, 32<<10)
		for {
			k, err := m.Read(buf)
			n += k
			for m.feeds[1].lagging() > 0 {
				time.Sleep(time.Millisecond)
			}
			if err != nil {
				break
			}
		}
		done <- n
	}()
	select {
	case n := <-done:
		if n != len(body) {
			t.Fatalf("the request read %d bytes, want %d", n, len(body))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a mirror that reads nothing held the request's body up")
	}
	if n := <-fastGot; n != len(body) {
		t.Errorf("the mirror that kept up got %d bytes, want %d", n, len(body))
	}
	if _, err := io.ReadAll(stuck); !errors.Is(err, errMirrorBehind) {
		t.Errorf("the lagging mirror's body ended with %v, want %v", err, errMirrorBehind)
	}
	m.Close()
}
