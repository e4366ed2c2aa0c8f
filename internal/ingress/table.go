package ingress

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
)

// ClassName is the IngressClass skiff serves.
const ClassName = "skiff"

// ControllerName is the spec.controller of the "skiff" IngressClass.
const ControllerName = "skiff.dev/ingress-controller"

// Annotations read from IngressClasses and Ingresses.
const (
	annDefaultClass   = "ingressclass.kubernetes.io/is-default-class"
	annLegacyClass    = "kubernetes.io/ingress.class"
	AnnLoadBalance    = "skiff.dev/load-balance"
	AnnHashOn         = "skiff.dev/hash-on"
	AnnAffinity       = "skiff.dev/session-affinity"
	AnnAffinityCookie = "skiff.dev/session-cookie-name"
	AnnSSLRedirect    = "skiff.dev/ssl-redirect"
	AnnReadTimeout    = "skiff.dev/proxy-read-timeout"
)

// Defaults of the per-Ingress settings.
const (
	DefaultAffinityCookie = "skiff-affinity"
	DefaultReadTimeout    = 60 * time.Second
)

// AppProtocolH2C is the Service port appProtocol of backends spoken to
// with HTTP/2 over cleartext.
const AppProtocolH2C = "kubernetes.io/h2c"

// Reasons of Problems, used as Event reasons.
const (
	ReasonBackendNotFound    = "BackendNotFound"
	ReasonConflict           = "Conflict"
	ReasonInvalidCertificate = "InvalidCertificate"
	ReasonUnsupportedBackend = "UnsupportedBackend"
	ReasonInvalidAnnotation  = "InvalidAnnotation"
)

// State is everything Build reads: the cluster's objects as the informers
// hold them, and the time certificates are checked against.
type State struct {
	// Class is the IngressClass name served (ClassName when empty).
	Class string
	// DefaultClass makes Class the cluster's default even when its
	// IngressClass object lacks the is-default-class annotation; Build also
	// reads that annotation from IngressClasses.
	DefaultClass bool

	Ingresses      []*networkingv1.Ingress
	IngressClasses []*networkingv1.IngressClass
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	// Secrets of type kubernetes.io/tls; others are ignored.
	Secrets []*corev1.Secret

	// Gateway API objects. GatewayController is the controllerName of
	// the GatewayClasses served (GatewayControllerName when empty);
	// GatewayAddresses are published in Gateway status (the nodes' IPs).
	GatewayController string
	GatewayClasses    []*gwv1.GatewayClass
	Gateways          []*gwv1.Gateway
	HTTPRoutes        []*gwv1.HTTPRoute
	GRPCRoutes        []*gwv1.GRPCRoute
	TLSRoutes         []*gwv1.TLSRoute
	TCPRoutes         []*gwv1.TCPRoute
	UDPRoutes         []*gwv1.UDPRoute
	ReferenceGrants   []*gwv1.ReferenceGrant
	// BackendTrafficPolicies are the experimental channel's
	// XBackendTrafficPolicies (their sessionPersistence is applied).
	BackendTrafficPolicies []*gwxv1a1.XBackendTrafficPolicy
	// BackendTLSPolicies make the proxy speak TLS to the Services they
	// target; ConfigMaps hold their CA certificates.
	BackendTLSPolicies []*gwv1.BackendTLSPolicy
	ConfigMaps         []*corev1.ConfigMap
	// ListenerSets add listeners to Gateways that allow them.
	ListenerSets []*gwv1.ListenerSet
	// Namespaces are read for listeners' allowedRoutes selectors.
	Namespaces       []*corev1.Namespace
	GatewayAddresses []string
	// GatewayPool, when valid, gives each Gateway an address of its own,
	// served apart from the nodes' addresses.
	GatewayPool netip.Prefix

	// Now is when certificates must be valid.
	Now time.Time
}

// Problem is something wrong with one Ingress, meant for an Event on it.
type Problem struct {
	Ingress types.NamespacedName
	Reason  string // one of the Reason constants
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s: %s", p.Ingress, p.Reason, p.Message)
}

// Endpoint is one ready pod address a backend balances over.
type Endpoint struct {
	Addr netip.AddrPort
	// Weight is the endpoint's relative share of picks (at least 1).
	Weight int
}

func (e Endpoint) String() string { return e.Addr.String() }

// Backend is one Service port with the endpoints behind it, and how
// requests are spread over them.
type Backend struct {
	Namespace, Service string
	// Port is the Service port as the Ingress names it: a name or a number.
	Port string
	// Endpoints are ready, not terminating, sorted by address.
	Endpoints []Endpoint
	// Missing, when set, says why the backend cannot be served (a Service
	// or port that does not exist); requests get 503 with it.
	Missing string
	Policy  Policy
	// H2C speaks HTTP/2 without TLS to the endpoints: the Service port's
	// appProtocol is kubernetes.io/h2c.
	H2C bool
	// TLS, when set, is the BackendTLSPolicy's TLS to the endpoints.
	TLS *BackendTLS

	once     sync.Once // guards the lazy creation of balancer
	balancer Balancer
}

// Name is NS/NAME:PORT, the backend's name in errors.
func (b *Backend) Name() string { return b.Namespace + "/" + b.Service + ":" + b.Port }

// The kinds of object a Route comes from.
const (
	KindIngress   = "Ingress"
	KindHTTPRoute = "HTTPRoute"
	KindGRPCRoute = "GRPCRoute"
	KindTLSRoute  = "TLSRoute"
	KindTCPRoute  = "TCPRoute"
	KindUDPRoute  = "UDPRoute"
)

// Route is one Ingress path (or default backend), or one match of an
// HTTPRoute rule, and where it leads.
type Route struct {
	// Kind and Source name the object the route comes from.
	Kind     string
	Source   types.NamespacedName
	Host     string // lower case; "*.foo.com" wildcard; "" any host
	Path     string // normalized: "/" or no trailing slash for Prefix
	PathType networkingv1.PathType
	// SSLRedirect redirects plain HTTP requests to HTTPS with a 308.
	SSLRedirect bool
	// Backend is where an Ingress route leads; nil for an HTTPRoute, whose
	// Rule says what to do.
	Backend *Backend
	// Cond is what an HTTPRoute match asks beyond host and path; Rule is
	// what its rule does (filters, weighted backends). Both nil for an
	// Ingress route.
	Cond *RequestMatch
	Rule *RuleAction
	// order breaks ties between HTTPRoute matches of equal precedence: the
	// older route, then its rule, then the match within the rule.
	order int
	// listenerHost is the hostname of the Gateway listener an HTTPRoute
	// or GRPCRoute match came through ("" none).
	listenerHost string
	// ClientNamespace is set on a consumer route of the mesh (an HTTPRoute
	// or GRPCRoute attached to a Service of another namespace, see
	// mesh.go): the namespace of the route, the only one whose clients it
	// applies to. It is "" on a producer route (in the Service's own
	// namespace), which applies to every client, and on the others.
	ClientNamespace string
}

// hostRoutes are the routes of one host, in match order.
type hostRoutes []*Route

// listener is the part of a Table served on one port.
type listener struct {
	secure   bool
	exact    map[string]hostRoutes // by host
	wildcard map[string]hostRoutes // by the suffix after "*."
	// gwWildcard are HTTPRoute wildcard hosts, by the suffix after "*.":
	// they match one or more labels.
	gwWildcard map[string]hostRoutes
	anyHost    hostRoutes
	fallback   *Route // the oldest Ingress's default backend

	certs map[string]*tls.Certificate // by host; wildcard hosts keep "*."
	// defaultCert serves SNI names no host certificate covers; nil means
	// the proxy's self-signed one.
	defaultCert *tls.Certificate

	// https: the port serves HTTPS (an Ingress port or an HTTPS Gateway
	// listener) to connections no TLSRoute takes.
	https bool
	// tlsRoutes are TLSRoutes by SNI host ("*.suffix" wildcards match one
	// or more labels, "" any); tlsListenerHosts are the hostnames of the
	// port's TLS listeners, whose connections go to no HTTP route.
	tlsRoutes        map[string]*StreamRoute
	tlsListenerHosts map[string]bool

	// tcp, udp: the port of a TCP or UDP listener; portRoute serves its
	// connections or datagrams (the oldest TCPRoute or UDPRoute attached).
	tcp, udp  bool
	portRoute *StreamRoute

	// gwHosts are the hostnames of the HTTP and HTTPS Gateway listeners
	// on the port ("" for one without): a request is matched only against
	// the routes of the most specific listener its host falls under
	// (listener isolation).
	gwHosts map[string]bool
}

func newListener(secure bool) *listener {
	return &listener{
		secure:           secure,
		exact:            map[string]hostRoutes{},
		wildcard:         map[string]hostRoutes{},
		certs:            map[string]*tls.Certificate{},
		tlsRoutes:        map[string]*StreamRoute{},
		tlsListenerHosts: map[string]bool{},
	}
}

// add files r under its host.
func (l *listener) add(r *Route) {
	switch host := r.Host; {
	case host == "":
		l.anyHost = append(l.anyHost, r)
	case strings.HasPrefix(host, "*."):
		l.wildcard[host[2:]] = append(l.wildcard[host[2:]], r)
	default:
		l.exact[host] = append(l.exact[host], r)
	}
}

func (l *listener) sort() {
	for _, rs := range l.exact {
		sortRoutes(rs)
	}
	for _, rs := range l.wildcard {
		sortRoutes(rs)
	}
	for _, rs := range l.gwWildcard {
		sortRoutes(rs)
	}
	sortRoutes(l.anyHost)
}

// The ports Ingresses are served on, as Gateway listeners name them; the
// controller binds them to its HTTP and HTTPS addresses.
const (
	HTTPPort  = 80
	HTTPSPort = 443
)

// Table is the routing table Build renders: immutable once built, shared by
// concurrent requests.
type Table struct {
	ports map[int]*listener // by port: HTTPPort, HTTPSPort and Gateway listener ports
	// byAddr are the listeners of Gateways with an address of their own
	// (State.GatewayPool), by that address and port.
	byAddr map[netip.Addr]map[int]*listener

	tlsHosts  map[string]bool
	endpoints []string // every endpoint address, sorted
	// backendTLS are the BackendTLS.IDs its backends speak.
	backendTLS map[string]bool
	// checks are the active health checks, by endpoint address.
	checks map[string]ActiveCheck
	// mesh are the routes of HTTPRoutes and GRPCRoutes attached to
	// Services (GAMMA), by Service port (mesh.go).
	mesh map[meshKey]*meshRoutes

	// Served are the Ingresses of our class, sorted.
	Served []types.NamespacedName
	// Problems are misconfigurations of served Ingresses.
	Problems []Problem
	// Conflicts are rules shadowed by an older Ingress's.
	Conflicts []Problem

	// Gateway API statuses computed from the objects (see gateway.go).
	Gateway GatewayStatuses
}

// Build renders the routing table for in. It is pure: same input, same
// table.
func Build(in State) *Table {
	class := cmp.Or(in.Class, ClassName)
	b := &builder{
		in:       in,
		class:    class,
		isDef:    in.DefaultClass || classIsDefault(in.IngressClasses, class),
		backends: map[string]*Backend{},
		claimed:  map[string]*Route{},
		t: &Table{
			ports:    map[int]*listener{HTTPPort: newListener(false), HTTPSPort: newListener(true)},
			byAddr:   map[netip.Addr]map[int]*listener{},
			tlsHosts: map[string]bool{},
			checks:   map[string]ActiveCheck{},
			mesh:     map[meshKey]*meshRoutes{},
		},
	}
	b.t.ports[HTTPSPort].https = true
	ings := slices.Clone(in.Ingresses)
	slices.SortFunc(ings, olderFirst)
	var ours []*networkingv1.Ingress
	for _, ing := range ings {
		if b.ours(ing) {
			ours = append(ours, ing)
			b.t.Served = append(b.t.Served, key(ing))
		}
	}
	for _, ing := range ours {
		b.addTLS(ing)
	}
	for _, ing := range ours {
		b.addIngress(ing)
	}
	b.addGateways()
	t := b.t
	for _, l := range t.ports {
		l.sort()
	}
	for _, ls := range t.byAddr {
		for _, l := range ls {
			l.sort()
		}
	}
	for _, m := range t.mesh {
		m.sort()
	}
	t.backendTLS = map[string]bool{}
	for _, be := range b.backends {
		if be.TLS != nil {
			t.backendTLS[be.TLS.ID] = true
		}
	}
	seen := map[string]bool{}
	for _, be := range b.backends {
		for _, ep := range be.Endpoints {
			if s := ep.String(); !seen[s] {
				seen[s] = true
				t.endpoints = append(t.endpoints, s)
			}
		}
	}
	slices.Sort(t.endpoints)
	slices.SortFunc(t.Served, compareNames)
	return t
}

type builder struct {
	in       State
	class    string
	isDef    bool
	t        *Table
	backends map[string]*Backend // by Name and policy
	claimed  map[string]*Route   // by host, path type and path
	policies *backendPolicies    // the XBackendTrafficPolicies, for Gateway routes
	tls      *backendTLSPolicies // the BackendTLSPolicies, for Gateway routes
}

func key(ing *networkingv1.Ingress) types.NamespacedName { return objKey(&ing.ObjectMeta) }

// olderFirst orders Ingresses by creation, then namespace/name.
func olderFirst(a, b *networkingv1.Ingress) int { return olderObject(&a.ObjectMeta, &b.ObjectMeta) }

func classIsDefault(classes []*networkingv1.IngressClass, name string) bool {
	for _, c := range classes {
		if c.Name == name && c.Annotations[annDefaultClass] == "true" {
			return true
		}
	}
	return false
}

// ours tells whether ing belongs to our class: by spec.ingressClassName, by
// the legacy annotation, or by having no class while ours is the default.
func (b *builder) ours(ing *networkingv1.Ingress) bool {
	if ing.Spec.IngressClassName != nil {
		return *ing.Spec.IngressClassName == b.class
	}
	if c, ok := ing.Annotations[annLegacyClass]; ok {
		return c == b.class
	}
	return b.isDef
}

func (b *builder) problem(ing *networkingv1.Ingress, reason, format string, args ...any) {
	p := Problem{Ingress: key(ing), Reason: reason, Message: fmt.Sprintf(format, args...)}
	if !slices.Contains(b.t.Problems, p) {
		b.t.Problems = append(b.t.Problems, p)
	}
}

// addTLS loads the certificates of ing's spec.tls. The first Ingress to
// name a host with a usable certificate wins it.
func (b *builder) addTLS(ing *networkingv1.Ingress) {
	for _, t := range ing.Spec.TLS {
		var cert *tls.Certificate
		if t.SecretName != "" {
			c, err := b.certificate(ing.Namespace, t.SecretName)
			if err != nil {
				b.problem(ing, ReasonInvalidCertificate, "TLS secret %s/%s: %v; serving the default certificate", ing.Namespace, t.SecretName, err)
			}
			cert = c
		}
		for _, h := range t.Hosts {
			h = normalizeHost(h)
			b.t.tlsHosts[h] = true
			certs := b.t.ports[HTTPSPort].certs
			if _, taken := certs[h]; cert != nil && !taken {
				certs[h] = cert
			}
		}
	}
}

func (b *builder) certificate(namespace, name string) (*tls.Certificate, error) {
	var s *corev1.Secret
	for _, c := range b.in.Secrets {
		if c.Namespace == namespace && c.Name == name {
			s = c
			break
		}
	}
	if s == nil {
		return nil, fmt.Errorf("not found")
	}
	if s.Type != corev1.SecretTypeTLS {
		return nil, fmt.Errorf("type is %q, not %q", s.Type, corev1.SecretTypeTLS)
	}
	c, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, err
	}
	if now := b.in.Now; now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate expired at %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(c.Leaf.NotBefore) {
		return nil, fmt.Errorf("certificate is not valid before %s", c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

func (b *builder) addIngress(ing *networkingv1.Ingress) {
	pol, errs := parsePolicy(ing.Annotations)
	for _, err := range errs {
		b.problem(ing, ReasonInvalidAnnotation, "%v", err)
	}
	redirect, redirectSet, err := parseBool(ing.Annotations, AnnSSLRedirect)
	if err != nil {
		b.problem(ing, ReasonInvalidAnnotation, "%v", err)
	}
	if d := ing.Spec.DefaultBackend; d != nil {
		if be := b.backend(ing, d, pol); be != nil {
			r := &Route{Kind: KindIngress, Source: key(ing), Backend: be, SSLRedirect: redirect && redirectSet}
			if fb := b.t.ports[HTTPPort].fallback; fb == nil {
				b.t.ports[HTTPPort].fallback = r
				b.t.ports[HTTPSPort].fallback = r
			} else {
				b.conflict(ing, "default backend %s is shadowed by the default backend of %s, which is older", be.Name(), fb.Source)
			}
		}
	}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		host := normalizeHost(rule.Host)
		ssl := redirect
		if !redirectSet {
			ssl = host != "" && b.t.hasTLS(host)
		}
		for _, p := range rule.HTTP.Paths {
			pt := networkingv1.PathTypePrefix
			if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
				pt = networkingv1.PathTypeExact
			}
			path := normalizePath(p.Path, pt)
			claim := host + " " + string(pt) + " " + path
			if old, taken := b.claimed[claim]; taken {
				b.conflict(ing, "host %q path %q (%s) is already served by %s, which is older", rule.Host, path, pt, old.Source)
				continue
			}
			be := b.backend(ing, &p.Backend, pol)
			if be == nil {
				continue
			}
			r := &Route{
				Kind: KindIngress, Source: key(ing),
				Host: host, Path: path, PathType: pt,
				SSLRedirect: ssl, Backend: be,
			}
			b.claimed[claim] = r
			b.t.ports[HTTPPort].add(r)
			b.t.ports[HTTPSPort].add(r)
		}
	}
}

func (b *builder) conflict(ing *networkingv1.Ingress, format string, args ...any) {
	b.t.Conflicts = append(b.t.Conflicts, Problem{Ingress: key(ing), Reason: ReasonConflict, Message: fmt.Sprintf(format, args...)})
}

// backend resolves ib to a Backend, shared by every route naming the same
// Service port with the same policy. It returns nil for a backend that
// gets no route at all (resource backends).
func (b *builder) backend(ing *networkingv1.Ingress, ib *networkingv1.IngressBackend, pol Policy) *Backend {
	if ib.Service == nil {
		b.problem(ing, ReasonUnsupportedBackend, "resource backends are not supported")
		return nil
	}
	be := b.cachedBackend(ing.Namespace, ib.Service.Name, ib.Service.Port, corev1.ProtocolTCP, pol)
	if be.Missing != "" {
		b.problem(ing, ReasonBackendNotFound, "%s", be.Missing)
	}
	return be
}

// cachedBackend is serviceBackend, shared by every route naming the same
// Service port with the same policy.
func (b *builder) cachedBackend(namespace, name string, port networkingv1.ServiceBackendPort, proto corev1.Protocol, pol Policy) *Backend {
	return b.cachedTLSBackend(namespace, name, port, proto, pol, nil)
}

// cachedTLSBackend is cachedBackend spoken to over tls (nil: plain).
func (b *builder) cachedTLSBackend(namespace, name string, port networkingv1.ServiceBackendPort, proto corev1.Protocol, pol Policy, tls *BackendTLS) *Backend {
	portName := port.Name
	if portName == "" {
		portName = strconv.Itoa(int(port.Number))
	}
	id := namespace + "/" + name + ":" + portName + "/" + string(proto) + " " + pol.String()
	if tls != nil {
		id += " tls " + tls.ID
	}
	if old, ok := b.backends[id]; ok {
		return old
	}
	be := b.serviceBackend(namespace, name, port, proto, pol)
	be.TLS = tls
	b.backends[id] = be
	return be
}

// serviceBackend resolves a Service port to its endpoints; the Backend has
// Missing set when the Service or port does not exist.
func (b *builder) serviceBackend(namespace, name string, port networkingv1.ServiceBackendPort, proto corev1.Protocol, pol Policy) *Backend {
	portName := port.Name
	if portName == "" {
		portName = strconv.Itoa(int(port.Number))
	}
	be := &Backend{Namespace: namespace, Service: name, Port: portName, Policy: pol}
	svc := b.service(namespace, name)
	var sp *corev1.ServicePort
	if svc != nil {
		for i, p := range svc.Spec.Ports {
			if cmp.Or(p.Protocol, corev1.ProtocolTCP) != proto {
				continue
			}
			if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
				sp = &svc.Spec.Ports[i]
				break
			}
		}
	}
	switch {
	case svc == nil:
		be.Missing = fmt.Sprintf("service %s/%s not found", namespace, name)
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		be.Missing = fmt.Sprintf("service %s/%s is of type ExternalName, which is not supported", namespace, name)
	case sp == nil:
		be.Missing = fmt.Sprintf("service %s/%s has no port %s", namespace, name, portName)
		if proto != corev1.ProtocolTCP {
			be.Missing = fmt.Sprintf("service %s/%s has no %s port %s", namespace, name, proto, portName)
		}
	default:
		be.Endpoints = b.endpoints(namespace, name, sp.Name, proto)
		if chk, ok := activeCheckOf(svc); ok && proto == corev1.ProtocolTCP {
			for _, ep := range be.Endpoints {
				b.t.checks[ep.Addr.String()] = chk
			}
		}
		be.H2C = sp.AppProtocol != nil && *sp.AppProtocol == AppProtocolH2C
	}
	return be
}

func (b *builder) service(namespace, name string) *corev1.Service {
	for _, s := range b.in.Services {
		if s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	return nil
}

// endpoints collects the ready, not terminating addresses of the Service's
// EndpointSlices, with the target port of the slice port named portName.
func (b *builder) endpoints(namespace, service, portName string, proto corev1.Protocol) []Endpoint {
	seen := map[netip.AddrPort]bool{}
	var out []Endpoint
	for _, s := range b.in.EndpointSlices {
		if s.Namespace != namespace || s.Labels[discoveryv1.LabelServiceName] != service ||
			s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var port int32
		for _, p := range s.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && ptr.Deref(p.Protocol, corev1.ProtocolTCP) == proto && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			if (c.Ready != nil && !*c.Ready) || (c.Terminating != nil && *c.Terminating) || len(ep.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
			if !seen[ap] {
				seen[ap] = true
				out = append(out, Endpoint{Addr: ap, Weight: 1})
			}
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
	return out
}

// normalizeHost lower-cases h and drops a trailing dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// normalizePath drops the trailing slash of a Prefix path, which matching
// ignores; an empty path is "/".
func normalizePath(p string, pt networkingv1.PathType) string {
	if p == "" {
		return "/"
	}
	if pt == networkingv1.PathTypePrefix && len(p) > 1 {
		if t := strings.TrimRight(p, "/"); t != "" {
			return t
		}
		return "/"
	}
	return p
}

// sortRoutes orders routes for matching. Ingress routes: longest path
// first, Exact before Prefix on equal length (paths are claimed once per
// type, so this order is total). HTTPRoute matches follow the Gateway API's
// precedence: Exact paths, then the longest prefix, then a method match,
// the most header matches, the most query matches, and the older route.
func sortRoutes(rs hostRoutes) {
	slices.SortStableFunc(rs, compareRoutes)
}

func compareRoutes(a, b *Route) int {
	if a.Kind == KindIngress && b.Kind == KindIngress {
		if c := cmp.Compare(len(b.Path), len(a.Path)); c != 0 {
			return c
		}
		if a.PathType != b.PathType {
			if a.PathType == networkingv1.PathTypeExact {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Path, b.Path)
	}
	if ae, be := a.PathType == networkingv1.PathTypeExact, b.PathType == networkingv1.PathTypeExact; ae != be {
		if ae {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(len(b.Path), len(a.Path)); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Cond.count(), a.Cond.count()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Cond.headerCount(), a.Cond.headerCount()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Cond.queryCount(), a.Cond.queryCount()); c != 0 {
		return c
	}
	return cmp.Compare(a.order, b.order)
}

// matches tells whether the request path p falls under r.
func (r *Route) matches(p string) bool {
	if r.Cond != nil && r.Cond.PathRegexp != nil {
		return r.Cond.PathRegexp.MatchString(p)
	}
	if r.PathType == networkingv1.PathTypeExact {
		return p == r.Path
	}
	if r.Path == "/" {
		return true
	}
	return p == r.Path || strings.HasPrefix(p, r.Path+"/")
}

// Match finds the Ingress route for a request's Host header and URL path
// on the HTTP port; see MatchRequest.
func (t *Table) Match(host, path string) *Route {
	return t.MatchRequest(HTTPPort, &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: path}})
}

// MatchRequest finds the route for r arriving on port: among the exact
// host's routes, then the wildcard's, then the routes without a host, then
// the default backend. It returns nil when nothing matches.
func (t *Table) MatchRequest(port int, r *http.Request) *Route {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	l := t.listenerAt(local, port)
	if l == nil {
		return nil
	}
	host := hostOnly(r.Host)
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	listenerHost, _ := mostSpecific(l.gwHosts, host)
	match := func(rs hostRoutes) *Route {
		for _, rt := range rs {
			if rt.Kind != KindIngress && rt.listenerHost != listenerHost {
				continue
			}
			if rt.matches(path) && rt.Cond.matchesRequest(r) {
				return rt
			}
		}
		return nil
	}
	if rt := match(l.exact[host]); rt != nil {
		return rt
	}
	if rt := match(l.wildcard[wildcardSuffix(host)]); rt != nil {
		return rt
	}
	// Gateway API wildcards, the longest suffix first.
	for s := wildcardSuffix(host); s != "" && len(l.gwWildcard) > 0; s = wildcardSuffix(s) {
		if rt := match(l.gwWildcard[s]); rt != nil {
			return rt
		}
	}
	if rt := match(l.anyHost); rt != nil {
		return rt
	}
	return l.fallback
}

// Misdirected tells whether r, over TLS on port, names a host that falls
// under another Gateway listener than the TLS server name its connection
// was opened for (HTTP/2 clients reuse a connection for every host its
// certificate covers): such a request gets 421, for the client to open a
// connection of its own.
func (t *Table) Misdirected(port int, r *http.Request) bool {
	if r.TLS == nil || r.TLS.ServerName == "" {
		return false
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	l := t.listenerAt(local, port)
	if l == nil || len(l.gwHosts) == 0 {
		return false
	}
	byName, ok := mostSpecific(l.gwHosts, normalizeHost(r.TLS.ServerName))
	if !ok {
		return false
	}
	byHost, ok := mostSpecific(l.gwHosts, hostOnly(r.Host))
	return !ok || byHost != byName
}

// listenerAt is the listener for a connection to local on port: a
// Gateway's own address's, else the nodes' one.
func (t *Table) listenerAt(local net.Addr, port int) *listener {
	if len(t.byAddr) > 0 && local != nil {
		var ip netip.Addr
		switch a := local.(type) {
		case *net.TCPAddr:
			ip = a.AddrPort().Addr()
		case *net.UDPAddr:
			ip = a.AddrPort().Addr()
		}
		if ls, ok := t.byAddr[ip.Unmap()]; ok {
			return ls[port]
		}
	}
	return t.ports[port]
}

// Proto is what a port speaks (on every address).
type Proto string

const (
	ProtoHTTP Proto = "HTTP" // plain HTTP/1.1 and h2c
	ProtoTLS  Proto = "TLS"  // HTTPS, and TLS listeners' connections by SNI
	ProtoTCP  Proto = "TCP"  // a TCP listener's connections
	ProtoUDP  Proto = "UDP"  // a UDP listener's datagrams
)

func (l *listener) proto() Proto { return protoOf(l.tcp, l.udp, l.secure) }

func protoOf(tcp, udp, secure bool) Proto {
	switch {
	case tcp:
		return ProtoTCP
	case udp:
		return ProtoUDP
	case secure:
		return ProtoTLS
	}
	return ProtoHTTP
}

// udpPortOffset sets UDP port numbers apart from TCP's in the Table's port
// keys: a UDP listener's port is udpPortKey(port).
const udpPortOffset = 1 << 16

// udpPortKey is the key of UDP port number port.
func udpPortKey(port int) int { return port | udpPortOffset }

// portNumber is the port number of a key.
func portNumber(key int) int { return key &^ udpPortOffset }

// Ports lists the ports the table serves and what each speaks, by key: the
// port number, or udpPortKey of it for a UDP listener's.
func (t *Table) Ports() map[int]Proto {
	out := make(map[int]Proto, len(t.ports))
	for p, l := range t.ports {
		out[p] = l.proto()
	}
	for _, ls := range t.byAddr {
		for p, l := range ls {
			out[p] = l.proto()
		}
	}
	return out
}

// Certificate returns the certificate for an SNI server name on the HTTPS
// port; see CertificateFor.
func (t *Table) Certificate(serverName string) *tls.Certificate {
	return t.CertificateFor(HTTPSPort, serverName)
}

// CertificateFor returns the certificate for an SNI server name on port:
// the exact host's, then the wildcard's, then the port's default; nil when
// there is none.
func (t *Table) CertificateFor(port int, serverName string) *tls.Certificate {
	return t.CertificateAt(nil, port, serverName)
}

// CertificateAt is CertificateFor on a connection to local.
func (t *Table) CertificateAt(local net.Addr, port int, serverName string) *tls.Certificate {
	l := t.listenerAt(local, port)
	if l == nil {
		return nil
	}
	h := hostOnly(serverName)
	if c, ok := l.certs[h]; ok {
		return c
	}
	if s := wildcardSuffix(h); s != "" {
		if c, ok := l.certs["*."+s]; ok {
			return c
		}
	}
	return l.defaultCert
}

// hasTLS tells whether a rule host is named in some served Ingress's
// spec.tls, directly or through a wildcard.
func (t *Table) hasTLS(host string) bool {
	if t.tlsHosts[host] {
		return true
	}
	s := wildcardSuffix(host)
	return s != "" && !strings.HasPrefix(host, "*.") && t.tlsHosts["*."+s]
}

// Serves tells whether the Ingress named n is of our class.
func (t *Table) Serves(n types.NamespacedName) bool {
	_, found := slices.BinarySearchFunc(t.Served, n, compareNames)
	return found
}

func compareNames(a, b types.NamespacedName) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// Endpoints lists every endpoint address in the table, sorted.
func (t *Table) Endpoints() []string { return t.endpoints }

// hostOnly strips the port from a Host header value, lower-cases it and
// drops a trailing dot.
func hostOnly(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return normalizeHost(h)
}

// wildcardSuffix is what "*." stands before for host: everything after its
// first label, or "" when host has a single label.
func wildcardSuffix(host string) string {
	i := strings.IndexByte(host, '.')
	if i <= 0 || i == len(host)-1 {
		return ""
	}
	return host[i+1:]
}
