package ingress

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// meshServices are the Services of the mesh tests: web (cluster IP
// 10.96.0.10, ports http 80 and admin 8080) is the parent; v1, v2, v3 and
// flaky (port http 80) are backends; headless has no cluster IP.
func meshServices() []*corev1.Service {
	return []*corev1.Service{
		makeService("ns", "web").clusterIP("10.96.0.10").port("http", 80).port("admin", 8080).obj(),
		makeService("ns", "v1").port("http", 80).obj(),
		makeService("ns", "v2").port("http", 80).obj(),
		makeService("ns", "v3").port("http", 80).obj(),
		makeService("ns", "flaky").port("http", 80).obj(),
		makeService("ns", "headless").clusterIP(corev1.ClusterIPNone).port("http", 80).obj(),
	}
}

// TestMeshStatus: each Service parentRef of an HTTPRoute or GRPCRoute gets
// a status.parents entry of skiff's controller, Accepted when the Service
// has the port the parentRef selects, NoMatchingParent otherwise; its
// ResolvedRefs is the route's, except that a backendRef to another
// namespace needs no ReferenceGrant in the mesh.
func TestMeshStatus(t *testing.T) {
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{
			makeRoute("ns", "producer").service("", "web", 0, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "by-port").service("", "web", 8080, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "by-name").service("", "web", 0, "admin").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "missing").service("", "nosuch", 0, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "wrong-port").service("", "web", 9090, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "wrong-name").service("", "web", 80, "admin").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "headless").service("", "headless", 0, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "bad-backend").service("", "web", 80, "").rule(prefixMatch("/"), []string{"nosuch"}).obj(),
			makeRoute("client", "consumer").service("ns", "web", 80, "").rule(prefixMatch("/"), []string{"ns/v3"}).obj(),
			makeRoute("client", "both").parent("ns", "gw", "").service("ns", "web", 80, "").rule(prefixMatch("/"), []string{"ns/v3"}).obj(),
		})
	in.Services = append(in.Services, meshServices()...)
	in.Gateways[0].Spec.Listeners[0].AllowedRoutes = &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr.To(gwv1.NamespacesFromAll)}}
	grpc := grpcRoute("grpc", grpcMethod("pkg.Echo", "", false))
	grpc.Spec.ParentRefs = []gwv1.ParentReference{{Group: ptr.To(gwv1.Group("core")), Kind: ptr.To(gwv1.Kind("Service")), Name: "web"}}
	in.GRPCRoutes = []*gwv1.GRPCRoute{grpc}
	st := Build(in).Gateway

	for _, tt := range []struct {
		ns, name         string
		accepted         metav1.ConditionStatus
		acceptedReason   string
		resolved         metav1.ConditionStatus
		resolvedReason   string
		generation       int64
		grpc             bool
		gatewayParentToo bool // a first entry for the Gateway parent
	}{
		{"ns", "producer", "True", "Accepted", "True", "ResolvedRefs", 3, false, false},
		{"ns", "by-port", "True", "Accepted", "True", "ResolvedRefs", 3, false, false},
		{"ns", "by-name", "True", "Accepted", "True", "ResolvedRefs", 3, false, false},
		{"ns", "missing", "False", "NoMatchingParent", "True", "ResolvedRefs", 3, false, false},
		{"ns", "wrong-port", "False", "NoMatchingParent", "True", "ResolvedRefs", 3, false, false},
		{"ns", "wrong-name", "False", "NoMatchingParent", "True", "ResolvedRefs", 3, false, false},
		{"ns", "headless", "False", "NoMatchingParent", "True", "ResolvedRefs", 3, false, false},
		{"ns", "bad-backend", "True", "Accepted", "False", "BackendNotFound", 3, false, false},
		{"client", "consumer", "True", "Accepted", "True", "ResolvedRefs", 3, false, false},
		{"client", "both", "True", "Accepted", "True", "ResolvedRefs", 3, false, true},
		{"ns", "grpc", "True", "Accepted", "True", "ResolvedRefs", 4, true, false},
	} {
		k := types.NamespacedName{Namespace: tt.ns, Name: tt.name}
		ps := st.Routes[k]
		if tt.grpc {
			ps = st.GRPCRoutes[k]
		}
		want := 1
		if tt.gatewayParentToo {
			want = 2
		}
		if len(ps) != want {
			t.Errorf("route %s: %d parent statuses, want %d", k, len(ps), want)
			continue
		}
		p := ps[len(ps)-1]
		if p.ControllerName != GatewayControllerName || ptrValue(p.ParentRef.Kind) != "Service" {
			t.Errorf("route %s: entry of %q for a %q parent, want skiff's for the Service", k, p.ControllerName, ptrValue(p.ParentRef.Kind))
		}
		wantCondition(t, "route "+k.String(), p.Conditions, "Accepted", tt.accepted, tt.acceptedReason)
		wantCondition(t, "route "+k.String(), p.Conditions, "ResolvedRefs", tt.resolved, tt.resolvedReason)
		for _, c := range p.Conditions {
			if c.ObservedGeneration != tt.generation {
				t.Errorf("route %s %s observedGeneration = %d, want %d", k, c.Type, c.ObservedGeneration, tt.generation)
			}
		}
		if tt.gatewayParentToo {
			// The Gateway parent needs a ReferenceGrant for ns/v3.
			wantCondition(t, "route "+k.String()+" on the Gateway", ps[0].Conditions, "ResolvedRefs", "False", "RefNotPermitted")
		}
	}
}

// TestMeshRoutes: routes attach to the ports their parentRef selects;
// producer routes apply to every client, consumer routes to their own
// namespace's only, instead of the producer routes.
func TestMeshRoutes(t *testing.T) {
	in := State{
		Now: time.Now(),
		Services: append(meshServices(),
			makeService("ns", "multi").port("http", 80).port("admin", 8080).port("metrics", 9090).obj(),
			makeService("ns", "wide").port("http", 80).port("alt", 8080).obj(),
			makeService("ns", "theirs").port("http", 80).obj()),
		HTTPRoutes: []*gwv1.HTTPRoute{
			makeRoute("ns", "only-80").service("", "multi", 80, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "only-admin").service("", "multi", 0, "admin").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "every-port").service("", "wide", 0, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "producer").service("", "web", 80, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
			makeRoute("ns", "producer-twice").age(1).service("", "web", 80, "").service("", "web", 0, "http").rule(prefixMatch("/twice"), []string{"v1"}).obj(),
			makeRoute("client", "consumer").service("ns", "web", 80, "").rule(prefixMatch("/"), []string{"ns/v3"}).obj(),
			makeRoute("client", "consumer-only").service("ns", "theirs", 0, "").rule(prefixMatch("/"), []string{"ns/v3"}).obj(),
		},
	}
	tab := Build(in)
	svc := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: name} }
	for _, tt := range []struct {
		svc  string
		port int32
		want bool
	}{
		{"multi", 80, true},
		{"multi", 8080, true},
		{"multi", 9090, false},
		{"wide", 80, true},
		{"wide", 8080, true},
		{"web", 80, true},
		{"web", 8080, false},
		{"theirs", 80, true},
		{"v1", 80, false},
	} {
		if got := tab.HasMeshRoutes(svc(tt.svc), tt.port); got != tt.want {
			t.Errorf("HasMeshRoutes(%s, %d) = %v, want %v", tt.svc, tt.port, got, tt.want)
		}
	}
	sources := func(rs []*Route) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Source.String()+"@"+r.ClientNamespace)
		}
		return strings.Join(out, " ")
	}
	for _, tt := range []struct {
		svc, client, want string
	}{
		{"web", "ns", "ns/producer-twice@ ns/producer@"},
		{"web", "elsewhere", "ns/producer-twice@ ns/producer@"},
		{"web", "client", "client/consumer@client"},
		{"theirs", "client", "client/consumer-only@client"},
		{"theirs", "elsewhere", ""},
	} {
		if got := sources(tab.MeshRoutes(svc(tt.svc), 80, tt.client)); got != tt.want {
			t.Errorf("MeshRoutes(%s, 80, %s) = %q, want %q", tt.svc, tt.client, got, tt.want)
		}
	}
}

// meshTransport stands for the mesh's transport of one client identity:
// it dials cluster IPs where dial says (as the mesh balances them) and
// notes what it sends.
type meshTransport struct {
	base      *http.Transport
	requests  atomic.Int64
	forwarded atomic.Int64 // requests with an X-Forwarded-For header but clientXFF
	kept      atomic.Int64 // requests with clientXFF, as the client sent it
}

// clientXFF is an X-Forwarded-For header a client of the mesh sends.
const clientXFF = "203.0.113.9"

func newMeshTransport(t *testing.T, dial map[string]string) *meshTransport {
	m := &meshTransport{base: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := dial[addr]; ok {
				addr = to
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(m.base.CloseIdleConnections)
	return m
}

// h2c is m's twin speaking HTTP/2 without TLS (prior knowledge).
func (m *meshTransport) h2c(t *testing.T) *meshTransport {
	base := m.base.Clone()
	base.Protocols = new(http.Protocols)
	base.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(base.CloseIdleConnections)
	return &meshTransport{base: base}
}

func (m *meshTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	m.requests.Add(1)
	switch xff := r.Header.Values("X-Forwarded-For"); {
	case len(xff) == 1 && xff[0] == clientXFF:
		m.kept.Add(1)
	case len(xff) > 0:
		m.forwarded.Add(1)
	}
	return m.base.RoundTrip(r)
}

// meshGet sends GET path, with headers given as name, value pairs, to h as
// a pod's request to web.
func meshGet(h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://web.ns.svc.cluster.local"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestMeshHandler: the routes of a Service are carried out on the
// requests of the mesh, through the mesh's transport only: a 90/10 split,
// a header match, a request timeout, retries around a failing endpoint,
// parentRef ports, consumer routes, 404 when nothing matches, and the
// Service itself once its routes are gone.
func TestMeshHandler(t *testing.T) {
	var hits atomic.Int64 // requests the upstreams got
	echo := func(name string) netip.AddrPort {
		return upstream(t, name, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if r.URL.Path == "/slow" {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return
			}
			io.WriteString(w, name)
		})
	}
	var badHits atomic.Int64
	bad := upstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		badHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	frontend := echo("frontend")

	canary := makeRoute("ns", "canary").service("", "web", 80, "").hosts("ignored.example").
		rule(prefixMatch("/"), []string{"v1", "v2"}, 90, 10).
		rule(gwv1.HTTPRouteMatch{Path: prefixMatch("/").Path, Headers: []gwv1.HTTPHeaderMatch{{Name: "X-Canary", Value: "yes"}}}, []string{"v3"}).
		rule(prefixMatch("/slow"), []string{"v1"}).
		rule(prefixMatch("/retry"), []string{"flaky"}).obj()
	canary.Spec.Rules[2].Timeouts = &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("100ms"))}
	canary.Spec.Rules[3].Retry = &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{503}, Attempts: ptr.To(2), Backoff: ptr.To(gwv1.Duration("1ms"))}
	consumer := makeRoute("client", "consumer").service("ns", "web", 80, "").rule(prefixMatch("/"), []string{"ns/v3"}).
		filter(gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
			Set: []gwv1.HTTPHeader{{Name: "X-Consumer", Value: "client"}}}}).obj()
	in := State{
		Now:      time.Now(),
		Services: meshServices(),
		HTTPRoutes: []*gwv1.HTTPRoute{
			canary,
			makeRoute("ns", "admin").service("", "web", 0, "admin").rule(exactMatch("/admin"), []string{"v1"}).obj(),
			consumer,
		},
	}
	in.EndpointSlices = append(in.EndpointSlices,
		sliceFor("ns", "v1", echo("v1")),
		// A terminating endpoint that would refuse every connection.
		makeSlice("ns", "v1", "gone").port("http", 1).endpoint("127.0.0.1", ptr.To(true), ptr.To(true)).obj(),
		sliceFor("ns", "v2", echo("v2")),
		sliceFor("ns", "v3", echo("v3")),
		sliceFor("ns", "flaky", echo("flaky")),
		sliceFor("ns", "flaky", bad),
	)
	p, err := NewProxy(ProxyConfig{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	p.SetTable(Build(in))
	rt := newMeshTransport(t, map[string]string{"10.96.0.10:80": frontend.String()})
	h2 := rt.h2c(t)
	web := types.NamespacedName{Namespace: "ns", Name: "web"}

	if h := p.MeshHandler(types.NamespacedName{Namespace: "ns", Name: "v1"}, 80, "ns", rt, h2); h != nil {
		t.Error("a handler for a Service without routes")
	}
	h := p.MeshHandler(web, 80, "ns", rt, h2)
	if h == nil {
		t.Fatal("no handler for web:80")
	}

	// Weights 90:10 over 100 requests: exactly 90 and 10, never the
	// terminating endpoint; the route's hostname is ignored.
	count := map[string]int{}
	for range 100 {
		w := meshGet(h, "/")
		count[strings.TrimSpace(w.Body.String())+" "+http.StatusText(w.Code)]++
	}
	if count["v1 OK"] != 90 || count["v2 OK"] != 10 {
		t.Errorf("a 90/10 split over 100 requests gave %v, want v1:90 v2:10", count)
	}

	for _, tt := range []struct {
		name string
		h    http.Handler
		path string
		hdr  []string
		code int
		body string // its start
	}{
		{"header match", h, "/", []string{"X-Canary", "yes"}, 200, "v3"},
		{"request timeout", h, "/slow", nil, 504, "request timeout"},
		{"no match on the admin port", p.MeshHandler(web, 8080, "ns", rt, h2), "/", nil, 404, "no route of service ns/web port 8080"},
		{"the admin port's route", p.MeshHandler(web, 8080, "elsewhere", rt, h2), "/admin", nil, 200, "v1"},
		{"consumer route", p.MeshHandler(web, 80, "client", rt, h2), "/x", nil, 200, "v3"},
	} {
		if tt.h == nil {
			t.Errorf("%s: no handler", tt.name)
			continue
		}
		w := meshGet(tt.h, tt.path, tt.hdr...)
		if w.Code != tt.code || !strings.HasPrefix(w.Body.String(), tt.body) {
			t.Errorf("%s: GET %s = %d %q, want %d %q…", tt.name, tt.path, w.Code, w.Body.String(), tt.code, tt.body)
		}
		if got := w.Header().Get("X-Consumer"); (tt.name == "consumer route") != (got == "client") {
			t.Errorf("%s: X-Consumer %q; only the consumer route sets it", tt.name, got)
		}
	}

	// Retries on 503 mask the failing endpoint of flaky.
	for i := range 6 {
		if w := meshGet(h, "/retry"); w.Code != 200 || w.Body.String() != "flaky" {
			t.Errorf("retry %d: %d %q, want 200 from the healthy endpoint", i, w.Code, w.Body.String())
		}
	}
	if badHits.Load() == 0 {
		t.Error("the failing endpoint was never tried: the retries were not tested")
	}

	// A client's own X-Forwarded-For goes on as it sent it.
	if w := meshGet(h, "/", "X-Forwarded-For", clientXFF); w.Code != 200 || rt.kept.Load() != 1 {
		t.Errorf("a request with X-Forwarded-For: %d, %d requests carried it on unchanged, want 200 and 1", w.Code, rt.kept.Load())
	}

	// The routes go; a connection routed before sends to the Service.
	p.SetTable(Build(State{Now: time.Now(), Services: meshServices()}))
	w := meshGet(h, "/")
	if w.Code != 200 || w.Body.String() != "frontend" || w.Header().Get("Connection") != "close" {
		t.Errorf("without routes: %d %q Connection %q, want 200 from the Service's cluster IP and the connection closed",
			w.Code, w.Body.String(), w.Header().Get("Connection"))
	}
	if p.HasMeshRoutes(web, 80) {
		t.Error("HasMeshRoutes after the routes went")
	}

	if got, want := rt.requests.Load(), hits.Load(); got != want || h2.requests.Load() != 0 {
		t.Errorf("the mesh's HTTP/1.1 transport sent %d requests and its h2c one %d, the upstreams got %d: all must go through the first", got, h2.requests.Load(), want)
	}
	if n := rt.forwarded.Load(); n != 0 {
		t.Errorf("%d requests carried an X-Forwarded-For of the proxy's; the mesh passes requests on as sent", n)
	}
}

// TestControllerMesh: the Controller answers the mesh from its proxy's
// table.
func TestControllerMesh(t *testing.T) {
	c, err := New(Config{NodeName: "n1", Client: fake.NewClientset(), HTTPAddr: ":80", HTTPSAddr: ":443", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	if c.HasMeshRoutes(web, 80) || c.MeshHandler(web, 80, "ns", http.DefaultTransport, http.DefaultTransport) != nil {
		t.Error("mesh routes before the first table")
	}
	c.proxy.SetTable(Build(State{Now: time.Now(), Services: meshServices(), HTTPRoutes: []*gwv1.HTTPRoute{
		makeRoute("ns", "r").service("", "web", 80, "").rule(prefixMatch("/"), []string{"v1"}).obj(),
	}}))
	if !c.HasMeshRoutes(web, 80) || c.MeshHandler(web, 80, "ns", http.DefaultTransport, http.DefaultTransport) == nil {
		t.Error("no mesh routes for web:80")
	}
	if c.MeshHandler(web, 80, "ns", http.DefaultTransport, nil) != nil {
		t.Error("a handler without the mesh's transport")
	}
}

// h2cUpstream serves HTTP/1.1 and h2c (prior knowledge), answering with
// name, the protocol it got, and gRPC's status as a trailer.
func h2cUpstream(t *testing.T, name string) netip.AddrPort {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name+" "+r.Proto)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetHTTP1(true)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	return netip.MustParseAddrPort(strings.TrimPrefix(s.URL, "http://"))
}

// TestMeshHandlerHTTP2: a GRPCRoute on a Service routes a client's h2c
// (gRPC) calls by method, each sent on as HTTP/2 through the mesh's h2c
// transport with its trailers; an HTTP/1.1 request to a backend whose
// Service port is of appProtocol kubernetes.io/h2c goes the h2c way too.
func TestMeshHandlerHTTP2(t *testing.T) {
	gr := grpcRoute("calls", grpcMethod("pkg.Echo", "Call", false))
	gr.Spec.ParentRefs = []gwv1.ParentReference{{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: "web"}}
	gr.Spec.Rules[0].BackendRefs[0].Name = "v2"
	gr.Spec.Rules = append(gr.Spec.Rules, gwv1.GRPCRouteRule{BackendRefs: []gwv1.GRPCBackendRef{{
		BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v1", Port: ptr.To(gwv1.PortNumber(80))}},
	}}})
	services := meshServices()
	services[1].Spec.Ports[0].AppProtocol = ptr.To(AppProtocolH2C) // v1
	in := State{Now: time.Now(), Services: services, GRPCRoutes: []*gwv1.GRPCRoute{gr}}
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "v1", h2cUpstream(t, "v1")), sliceFor("ns", "v2", h2cUpstream(t, "v2")))
	p, err := NewProxy(ProxyConfig{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	p.SetTable(Build(in))
	h1 := newMeshTransport(t, nil)
	h2 := h1.h2c(t)
	h := p.MeshHandler(types.NamespacedName{Namespace: "ns", Name: "web"}, 80, "ns", h1, h2)
	if h == nil {
		t.Fatal("no handler for web:80")
	}
	// The mesh serves the client's connection with HTTP/1.1 and h2c.
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: h2.base.Clone()}
	t.Cleanup(client.CloseIdleConnections)

	for _, tt := range []struct {
		path, want string
		http2      bool
	}{
		{"/pkg.Echo/Call", "v2 HTTP/2.0", true},
		{"/pkg.Echo/Other", "v1 HTTP/2.0", true},
		{"/pkg.Echo/Other", "v1 HTTP/2.0", false}, // v1's port is h2c
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+tt.path, strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("Content-Type", "application/grpc")
		c := client
		if !tt.http2 {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// (An HTTP/1.1 answer of known length carries no trailers.)
		if string(body) != tt.want || tt.http2 && resp.Trailer.Get("Grpc-Status") != "0" {
			t.Errorf("POST %s (HTTP/2 %v) = %q trailer Grpc-Status %q, want %q and 0", tt.path, tt.http2, body, resp.Trailer.Get("Grpc-Status"), tt.want)
		}
	}
	if h2.requests.Load() != 3 || h1.requests.Load() != 0 {
		t.Errorf("h2c transport sent %d, HTTP/1.1 transport %d; want 3 and 0", h2.requests.Load(), h1.requests.Load())
	}
}
