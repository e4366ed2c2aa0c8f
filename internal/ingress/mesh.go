package ingress

import (
	"cmp"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway API for service meshes (GAMMA, GEP-1294): HTTPRoutes and
// GRPCRoutes whose parentRef is a Service apply to the requests enrolled
// pods send to that Service. The mesh's source-side proxy (internal/mesh)
// asks HasMeshRoutes on each connection to a Service port and, for
// HTTP/1.x and h2c (gRPC), serves its requests with MeshHandler; this file compiles the
// routes into the Table (Build) and serves them with forward, the proxy's
// own rule application, through the mesh's transport.

// meshKey is one port of one Service.
type meshKey struct {
	svc  types.NamespacedName
	port int32
}

// meshRoutes are the routes attached to one Service port, in match
// order: the producer routes (in the Service's namespace), for every
// client, and the consumer routes (in other namespaces) by the namespace
// they are in, for the clients of that namespace only, instead of the
// producer routes.
type meshRoutes struct {
	producer  hostRoutes
	consumers map[string]hostRoutes
	// frontend is the Service's cluster IP and this port, where a request
	// goes when the routes are gone by the time it arrives.
	frontend netip.AddrPort
	// filed are the routes added, by their rank (Build's order): a route
	// naming the Service twice is filed once.
	filed map[int]bool
}

func (m *meshRoutes) sort() {
	sortRoutes(m.producer)
	for _, rs := range m.consumers {
		sortRoutes(rs)
	}
}

// forClient are the routes applying to a client in namespace ns.
func (m *meshRoutes) forClient(ns string) hostRoutes {
	if rs, ok := m.consumers[ns]; ok {
		return rs
	}
	return m.producer
}

// serviceParent tells whether ref names a Service (group "" or "core",
// kind Service) rather than a Gateway.
func serviceParent(ref gwv1.ParentReference) bool {
	return ref.Group != nil && (*ref.Group == "" || *ref.Group == "core") &&
		ref.Kind != nil && *ref.Kind == "Service"
}

// attachService files hr's rules, resolved as action, under the ports of
// the Service ref names, and returns the parent's Accepted condition: a
// Service that does not exist, has no cluster IP (headless, ExternalName)
// or no TCP port the parentRef's port and sectionName select is no
// parent (NoMatchingParent). The route's hostnames are ignored: the
// Service is what requests are matched by. A route in the Service's
// namespace applies to every client (a producer route); one in another
// namespace only to the clients in its own (a consumer route).
func (b *builder) attachService(hr gwRoute, ref gwv1.ParentReference, action []*RuleAction, ri int) metav1.Condition {
	gen := hr.Generation
	ns := hr.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	noParent := func(format string, args ...any) metav1.Condition {
		return condition(string(gwv1.RouteConditionAccepted), false, string(gwv1.RouteReasonNoMatchingParent), fmt.Sprintf(format, args...), gen)
	}
	svc := b.service(ns, string(ref.Name))
	switch {
	case svc == nil:
		return noParent("service %s/%s not found", ns, ref.Name)
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return noParent("service %s/%s is of type ExternalName: it has no cluster IP for the mesh to route", ns, ref.Name)
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return noParent("service %s/%s is headless: it has no cluster IP for the mesh to route", ns, ref.Name)
	}
	var ports []int32
	for _, p := range svc.Spec.Ports {
		if cmp.Or(p.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP ||
			(ref.Port != nil && p.Port != int32(*ref.Port)) ||
			(ref.SectionName != nil && p.Name != string(*ref.SectionName)) {
			continue
		}
		ports = append(ports, p.Port)
	}
	if len(ports) == 0 {
		what := "TCP port"
		if ref.Port != nil {
			what += fmt.Sprintf(" %d", *ref.Port)
		}
		if ref.SectionName != nil {
			what += fmt.Sprintf(" named %q", *ref.SectionName)
		}
		return noParent("service %s/%s has no %s", ns, ref.Name, what)
	}
	client := ""
	if ns != hr.Namespace {
		client = hr.Namespace
	}
	var routes hostRoutes
	for i, rule := range hr.Spec.Rules {
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for mi, m := range matches {
			path, pt, cond := routeMatch(m)
			routes = append(routes, &Route{
				Kind: hr.kind, Source: objKey(&hr.ObjectMeta),
				Path: path, PathType: pt,
				Cond: cond, Rule: action[i],
				order:           ri<<20 | i<<10 | mi,
				ClientNamespace: client,
			})
		}
	}
	ip, _ := netip.ParseAddr(svc.Spec.ClusterIP)
	for _, port := range ports {
		k := meshKey{svc: objKey(&svc.ObjectMeta), port: port}
		m := b.t.mesh[k]
		if m == nil {
			m = &meshRoutes{consumers: map[string]hostRoutes{}, filed: map[int]bool{}}
			if ip.IsValid() {
				m.frontend = netip.AddrPortFrom(ip, uint16(port))
			}
			b.t.mesh[k] = m
		}
		if m.filed[ri] {
			continue
		}
		m.filed[ri] = true
		if client == "" {
			m.producer = append(m.producer, routes...)
		} else {
			m.consumers[client] = append(m.consumers[client], routes...)
		}
	}
	return condition(string(gwv1.RouteConditionAccepted), true, string(gwv1.RouteReasonAccepted), "Route accepted for the mesh's requests to the Service", gen)
}

// HasMeshRoutes tells whether an HTTPRoute or GRPCRoute attaches to port
// of Service svc, for some client.
func (t *Table) HasMeshRoutes(svc types.NamespacedName, port int32) bool {
	_, ok := t.mesh[meshKey{svc: svc, port: port}]
	return ok
}

// MeshRoutes are the routes applying to requests a pod of namespace
// clientNamespace sends to port of Service svc, in match order: the
// consumer routes of clientNamespace (their ClientNamespace) when it has
// some, else the Service's producer routes. They are nil when none
// applies: the requests go to the Service as they are.
func (t *Table) MeshRoutes(svc types.NamespacedName, port int32, clientNamespace string) []*Route {
	m := t.mesh[meshKey{svc: svc, port: port}]
	if m == nil {
		return nil
	}
	return m.forClient(clientNamespace)
}

// matchMesh finds the first of routes (in match order) that r meets, by
// path, method, headers and query; nil when none does.
func matchMesh(routes []*Route, r *http.Request) *Route {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	for _, rt := range routes {
		if rt.matches(path) && rt.Cond.matchesRequest(r) {
			return rt
		}
	}
	return nil
}

// HasMeshRoutes tells whether an HTTPRoute or GRPCRoute attaches to port
// of Service svc in the current table; false before the first.
func (p *Proxy) HasMeshRoutes(svc types.NamespacedName, port int32) bool {
	t := p.table.Load()
	return t != nil && t.HasMeshRoutes(svc, port)
}

// meshVia are the mesh's transports of one client pod: requests and
// mirrors go to endpoints through them alone, never through the proxy's
// pooled connections.
type meshVia struct {
	h1, h2c http.RoundTripper
}

// transport is the one of v that carries r to an endpoint of be: h2c
// when the client spoke HTTP/2 (gRPC, h2c: the protocol is kept end to
// end) or the Service port's appProtocol is kubernetes.io/h2c, else
// HTTP/1.1. be may be nil (no backend: the Service itself).
func (v *meshVia) transport(be *Backend, r *http.Request) http.RoundTripper {
	if r.ProtoMajor == 2 || be != nil && be.H2C {
		return v.h2c
	}
	return v.h1
}

// MeshHandler is the handler of the requests a pod of namespace
// clientNamespace sends to port of Service svc, when HTTPRoutes or
// GRPCRoutes attach to it (GAMMA), or nil when none applies to that
// client (or a transport is nil). Each request is matched against the
// routes of the table current when it arrives (MeshRoutes) and carried
// out as on a Gateway: filters, redirects, weighted backends, mirrors,
// timeouts, retries within the backend's retry budget, the backend's
// balancing and its endpoints' passive outlier detection (shared with the
// proxy's other requests). A request no route matches gets 404. Requests
// and mirrors go to endpoints through h1 (HTTP/1.1) or h2c (HTTP/2
// without TLS: for requests that came as HTTP/2, as gRPC's do, and for
// Service ports of appProtocol kubernetes.io/h2c) alone, without
// X-Forwarded-* headers: the mesh's transports of the client's identity,
// never the proxy's pooled connections. Should the routes be gone when a
// request arrives, it goes to the Service's cluster IP the same way, and
// the connection is closed after the answer.
func (p *Proxy) MeshHandler(svc types.NamespacedName, port int32, clientNamespace string, h1, h2c http.RoundTripper) http.Handler {
	t := p.table.Load()
	if t == nil || h1 == nil || h2c == nil || t.MeshRoutes(svc, port, clientNamespace) == nil {
		return nil
	}
	frontend := t.mesh[meshKey{svc: svc, port: port}].frontend
	via := &meshVia{h1: h1, h2c: h2c}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serveMesh(svc, port, clientNamespace, frontend, via, w, r)
	})
}

// serveMesh serves one request of MeshHandler.
func (p *Proxy) serveMesh(svc types.NamespacedName, port int32, clientNamespace string, frontend netip.AddrPort, via *meshVia, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	var x *exchange
	var route *Route
	defer func() { p.observe(r, rec, route, x, time.Since(start), true) }()

	var routes []*Route
	if t := p.table.Load(); t != nil {
		routes = t.MeshRoutes(svc, port, clientNamespace)
	}
	if routes == nil {
		p.passThrough(rec, r, svc, frontend, via)
		return
	}
	route = matchMesh(routes, r)
	if route == nil {
		plainError(rec, http.StatusNotFound, fmt.Sprintf("no route of service %s port %d matches %s %q", svc, port, r.Method, r.URL.Path))
		return
	}
	x = p.forward(rec, r, int(port), route, via)
}

// passThrough sends r, whose routes are gone, to the Service's frontend
// (cluster IP and port) through via, and has the client's connection
// closed after the answer (HTTP/1.x: an HTTP/2 connection is left to the
// client's idle timeout), so that its next one goes to the Service
// directly.
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, svc types.NamespacedName, frontend netip.AddrPort, via *meshVia) {
	if r.ProtoMajor < 2 {
		w.Header().Set("Connection", "close")
	}
	if !frontend.IsValid() {
		plainError(w, http.StatusServiceUnavailable, fmt.Sprintf("the routes of service %s are gone and it has no cluster IP; connect again", svc))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: frontend.String()})
			pr.Out.Host = pr.In.Host
		},
		Transport: via.transport(nil, r),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			plainError(w, http.StatusBadGateway, fmt.Sprintf("upstream error from %s (service %s): %v", frontend, svc, err))
		},
		BufferPool: copyBuffers{},
		ErrorLog:   p.rp.ErrorLog,
	}
	rp.ServeHTTP(w, r)
}

// HasMeshRoutes tells whether an HTTPRoute or GRPCRoute attaches to port
// of Service svc (GAMMA): a cheap look-up in the current table, for the
// mesh's hot path. It is false until Run has built the first table.
func (c *Controller) HasMeshRoutes(svc types.NamespacedName, port int32) bool {
	return c.proxy.HasMeshRoutes(svc, port)
}

// MeshHandler is the handler of the HTTP requests a pod of namespace
// clientNamespace sends to port of Service svc, sent on through h1 or h2c
// (the mesh's transports of the client's identity), or nil when no route
// applies to that client; see Proxy.MeshHandler. Consumer routes (in
// another namespace than the Service) apply to the clients of their
// namespace only, and for them replace the Service's producer routes.
func (c *Controller) MeshHandler(svc types.NamespacedName, port int32, clientNamespace string, h1, h2c http.RoundTripper) http.Handler {
	return c.proxy.MeshHandler(svc, port, clientNamespace, h1, h2c)
}
