package ingress

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayControllerName is the spec.controllerName of the GatewayClasses
// skiff serves.
const GatewayControllerName = "skiff.dev/gateway-controller"

// GatewayClassName is the GatewayClass the server creates.
const GatewayClassName = "skiff"

// pathRegex is the PathType of an HTTPRoute RegularExpression path match.
const pathRegex networkingv1.PathType = "RegularExpression"

// GatewayStatuses are the Gateway API statuses a Table was built with: what
// the status writer publishes.
type GatewayStatuses struct {
	// Classes are the conditions of the GatewayClasses skiff serves.
	Classes map[string][]metav1.Condition
	// Gateways are the statuses of the Gateways of those classes.
	Gateways map[types.NamespacedName]*gwv1.GatewayStatus
	// Routes are, per HTTPRoute, the status entries of its parents that
	// are Gateways skiff serves; entries of other controllers are kept.
	Routes map[types.NamespacedName][]gwv1.RouteParentStatus
	// GRPCRoutes, TLSRoutes, TCPRoutes and UDPRoutes are the same for
	// those kinds.
	GRPCRoutes map[types.NamespacedName][]gwv1.RouteParentStatus
	TLSRoutes  map[types.NamespacedName][]gwv1.RouteParentStatus
	TCPRoutes  map[types.NamespacedName][]gwv1.RouteParentStatus
	UDPRoutes  map[types.NamespacedName][]gwv1.RouteParentStatus
	// BackendTrafficPolicies are, per XBackendTrafficPolicy, skiff's
	// entries of its status.ancestors.
	BackendTrafficPolicies map[types.NamespacedName][]gwv1.PolicyAncestorStatus
	// BackendTLSPolicies are the same for BackendTLSPolicies.
	BackendTLSPolicies map[types.NamespacedName][]gwv1.PolicyAncestorStatus
	// ListenerSets are the statuses of the ListenerSets whose parent is a
	// Gateway skiff serves.
	ListenerSets map[types.NamespacedName]*gwv1.ListenerSetStatus
}

// RequestMatch is what an HTTPRoute match asks of a request beyond its host
// and path.
type RequestMatch struct {
	Method     string
	Headers    []ValueMatch
	Query      []ValueMatch
	PathRegexp *regexp.Regexp
}

// ValueMatch matches a header or query parameter: its value equal to Value,
// or matching Regexp when set.
type ValueMatch struct {
	Name   string
	Value  string
	Regexp *regexp.Regexp
}

func (v ValueMatch) matches(values []string) bool {
	if len(values) == 0 {
		return false
	}
	// Only the first value is matched, as the specification allows.
	if v.Regexp != nil {
		return v.Regexp.MatchString(values[0])
	}
	return values[0] == v.Value
}

func (m *RequestMatch) count() int {
	if m == nil || m.Method == "" {
		return 0
	}
	return 1
}

func (m *RequestMatch) headerCount() int {
	if m == nil {
		return 0
	}
	return len(m.Headers)
}

func (m *RequestMatch) queryCount() int {
	if m == nil {
		return 0
	}
	return len(m.Query)
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set, Add []ValueMatch // Name and Value only
	Remove   []string
}

// Redirect answers with a redirect instead of proxying; empty fields keep
// the request's.
type Redirect struct {
	Scheme, Hostname string
	Port             int // 0 derives it from the scheme
	Path             *PathModifier
	StatusCode       int
}

// Rewrite changes the Host header and path sent upstream.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
}

// PathModifier replaces the whole path, or the prefix the route matched.
type PathModifier struct {
	Full   *string
	Prefix *string
}

// Mirror is a RequestMirror filter: a copy of a share of the requests
// (Fraction, 0 to 1) goes to Backend.
type Mirror struct {
	Backend  *Backend
	Fraction float64
}

// WeightedBackend is one backendRef of a rule and its weight. A backend
// with Missing set answers 500 for its share.
type WeightedBackend struct {
	Backend *Backend
	Weight  int
	// RequestHeaders are the backendRef's own RequestHeaderModifier,
	// applied after the rule's when this backend is picked.
	RequestHeaders *HeaderModifier
}

// RuleAction is what an HTTPRoute rule does with a request it matched.
type RuleAction struct {
	// Invalid, when set, answers 500 with this message (a rule that skiff
	// cannot carry out as written).
	Invalid         string
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *Rewrite
	Mirrors         []Mirror
	CORS            *CORS
	Backends        []WeightedBackend
	// Timeout bounds the whole request; 0 means none.
	Timeout time.Duration
	// Retry, when set, is the rule's retry policy.
	Retry *Retry

	picker *weightedPicker
}

// Retry is an HTTPRoute rule's retry policy: a request whose answer has one
// of Codes, or that gets no answer (a failed connect, a reset, the backend
// timeout), is sent again up to Attempts more times, on another endpoint
// when there is one, waiting Backoff before each; the last answer or error
// is the client's. A request whose body is over 64 KiB is sent once.
type Retry struct {
	Codes    []int
	Attempts int
	Backoff  time.Duration
}

// Retry defaults where an HTTPRoute leaves them unset (Envoy's).
const (
	DefaultRetryAttempts = 1
	DefaultRetryBackoff  = 25 * time.Millisecond
)

// matchesRequest tells whether r meets m (a nil m matches everything).
func (m *RequestMatch) matchesRequest(r *http.Request) bool {
	if m == nil {
		return true
	}
	if m.Method != "" && r.Method != m.Method {
		return false
	}
	for _, h := range m.Headers {
		if !h.matches(r.Header.Values(h.Name)) {
			return false
		}
	}
	if len(m.Query) > 0 {
		q := r.URL.Query()
		for _, v := range m.Query {
			if !v.matches(q[v.Name]) {
				return false
			}
		}
	}
	return true
}

// gwListener is one listener of a served Gateway while building.
type gwListener struct {
	// gw is the Gateway, or for a ListenerSet's listener a Gateway
	// standing for the set (its namespace, name and generation); kind
	// says which (kindGateway or kindListenerSet).
	gw       *gwv1.Gateway
	kind     string
	addr     netip.Addr // the Gateway's own address; invalid: the nodes'
	table    map[int]*listener
	spec     *gwv1.Listener
	port     int
	secure   bool
	hostname string // "" any
	// passthrough: a TLS listener whose routes get the clients' TLS
	// connections as they are.
	passthrough bool
	tcp, udp    bool // a TCP or UDP listener
	kinds       []gwv1.RouteGroupKind
	usable      bool // serves routes
	// attachable listeners take routes (and count them) even when they
	// cannot serve them, e.g. for want of a certificate.
	attachable bool
	status     *gwv1.ListenerStatus
	cert       *tls.Certificate
}

func condition(typ string, ok bool, reason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
}

func setCondition(cs *[]metav1.Condition, c metav1.Condition) {
	for i := range *cs {
		if (*cs)[i].Type == c.Type {
			(*cs)[i] = c
			return
		}
	}
	*cs = append(*cs, c)
}

func conditionTrue(cs []metav1.Condition, typ string) bool {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

const (
	gatewayGroup    = gwv1.GroupName
	kindGateway     = "Gateway"
	kindListenerSet = "ListenerSet"
)

var (
	httpRouteKind = gwv1.RouteGroupKind{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: KindHTTPRoute}
	grpcRouteKind = gwv1.RouteGroupKind{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: KindGRPCRoute}
	tlsRouteKind  = gwv1.RouteGroupKind{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: KindTLSRoute}
	tcpRouteKind  = gwv1.RouteGroupKind{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: KindTCPRoute}
	udpRouteKind  = gwv1.RouteGroupKind{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: KindUDPRoute}
)

func ptrTo[T any](v T) *T { return &v }

// addGateways renders the Gateways of the classes skiff serves, and the
// HTTPRoutes attached to them, into the table and its GatewayStatuses.
func (b *builder) addGateways() {
	ctrl := cmp.Or(b.in.GatewayController, GatewayControllerName)
	st := &b.t.Gateway
	st.Classes = map[string][]metav1.Condition{}
	st.Gateways = map[types.NamespacedName]*gwv1.GatewayStatus{}
	st.Routes = map[types.NamespacedName][]gwv1.RouteParentStatus{}
	st.GRPCRoutes = map[types.NamespacedName][]gwv1.RouteParentStatus{}
	st.TLSRoutes = map[types.NamespacedName][]gwv1.RouteParentStatus{}
	st.TCPRoutes = map[types.NamespacedName][]gwv1.RouteParentStatus{}
	st.UDPRoutes = map[types.NamespacedName][]gwv1.RouteParentStatus{}
	st.ListenerSets = map[types.NamespacedName]*gwv1.ListenerSetStatus{}
	b.policies = newBackendPolicies(b.in.BackendTrafficPolicies)
	defer func() { st.BackendTrafficPolicies = b.policies.statuses(b.in.BackendTrafficPolicies, ctrl) }()
	b.tls = newBackendTLSPolicies(b.in.BackendTLSPolicies, b.in.ConfigMaps)
	defer func() { st.BackendTLSPolicies = b.tls.statuses(b.in.BackendTLSPolicies, ctrl) }()
	for _, gc := range b.in.GatewayClasses {
		if string(gc.Spec.ControllerName) != ctrl {
			continue
		}
		cs := []metav1.Condition{
			condition(string(gwv1.GatewayClassConditionStatusAccepted), true, string(gwv1.GatewayClassReasonAccepted), "Handled by "+ctrl, gc.Generation),
			condition(string(gwv1.GatewayClassConditionStatusSupportedVersion), true, string(gwv1.GatewayClassReasonSupportedVersion), "Gateway API CRDs of a supported version", gc.Generation),
		}
		if gc.Spec.ParametersRef != nil {
			cs[0] = condition(string(gwv1.GatewayClassConditionStatusAccepted), false, string(gwv1.GatewayClassReasonInvalidParameters), "skiff takes no parameters; remove spec.parametersRef", gc.Generation)
		}
		st.Classes[gc.Name] = cs
	}
	gws := slices.Clone(b.in.Gateways)
	slices.SortFunc(gws, func(a, c *gwv1.Gateway) int { return olderObject(&a.ObjectMeta, &c.ObjectMeta) })
	byGateway := map[types.NamespacedName][]*gwListener{}
	portProto := map[int]Proto{HTTPPort: ProtoHTTP, HTTPSPort: ProtoTLS}
	claimed := map[string]*gwListener{} // by port and hostname
	var served []*gwv1.Gateway
	for _, gw := range gws {
		cs, ok := st.Classes[string(gw.Spec.GatewayClassName)]
		if ok && conditionTrue(cs, string(gwv1.GatewayClassConditionStatusAccepted)) {
			served = append(served, gw)
		}
	}
	gws = served
	addrs, addrProblems := b.allocate(gws)
	for _, gw := range gws {
		gs := &gwv1.GatewayStatus{}
		st.Gateways[objKey(&gw.ObjectMeta)] = gs
		addr := addrs[objKey(&gw.ObjectMeta)]
		for i := range gw.Spec.Listeners {
			l := b.gatewayListener(gw, addr, &gw.Spec.Listeners[i], portProto, claimed)
			byGateway[objKey(&gw.ObjectMeta)] = append(byGateway[objKey(&gw.ObjectMeta)], l)
			gs.Listeners = append(gs.Listeners, *l.status)
		}
	}
	sets := b.addListenerSets(gws, addrs, portProto, claimed)
	b.addRoutes(ctrl, byGateway, sets)
	sets.finish(st.ListenerSets)
	// Statuses of Gateways, now that routes are counted.
	for _, gw := range gws {
		k := objKey(&gw.ObjectMeta)
		gs := st.Gateways[k]
		if gs == nil {
			continue
		}
		ls := byGateway[k]
		valid := 0
		for i, l := range ls {
			gs.Listeners[i] = *l.status
			if l.usable {
				valid++
			}
		}
		if addr, ok := addrs[k]; ok {
			gs.Addresses = append(gs.Addresses, gwv1.GatewayStatusAddress{Type: ptrTo(gwv1.IPAddressType), Value: addr.String()})
		} else if !b.in.GatewayPool.IsValid() {
			for _, a := range b.in.GatewayAddresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					gs.Addresses = append(gs.Addresses, gwv1.GatewayStatusAddress{Type: ptrTo(gwv1.IPAddressType), Value: ip.String()})
				}
			}
		}
		accepted := condition(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "Gateway accepted by skiff", gw.Generation)
		programmed := condition(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), "Served by the skiff proxy on every node", gw.Generation)
		if ok, msg := b.addressProblem(gw); !ok {
			accepted = condition(string(gwv1.GatewayConditionAccepted), false, string(gwv1.GatewayReasonUnsupportedAddress), msg, gw.Generation)
			programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), msg, gw.Generation)
		} else if msg != "" {
			programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotUsable), msg, gw.Generation)
		} else if p, ok := addrProblems[k]; ok {
			programmed = condition(string(gwv1.GatewayConditionProgrammed), false, p[0], p[1], gw.Generation)
		} else if valid < len(ls) {
			accepted.Reason = string(gwv1.GatewayReasonListenersNotValid)
			accepted.Message = fmt.Sprintf("%d of %d listeners are not valid; see status.listeners", len(ls)-valid, len(ls))
			if valid == 0 {
				accepted.Status = metav1.ConditionFalse
				programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), "no listener is valid", gw.Generation)
			}
		}
		if len(gs.Addresses) == 0 && programmed.Status == metav1.ConditionTrue && accepted.Status == metav1.ConditionTrue {
			programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotAssigned), "no node has an address yet", gw.Generation)
		}
		gs.Conditions = []metav1.Condition{accepted, programmed}
		gs.AttachedListenerSets = ptrTo(sets.attached[k])
	}
}

// allocate gives each Gateway an address of the pool, when there is one:
// the address it already has (status), else the one it asks for
// (spec.addresses), else the lowest free one; older Gateways first. It
// returns, per Gateway left without one, the Programmed reason and message.
func (b *builder) allocate(gws []*gwv1.Gateway) (map[types.NamespacedName]netip.Addr, map[types.NamespacedName][2]string) {
	pool := b.in.GatewayPool.Masked()
	if !pool.IsValid() {
		return nil, nil
	}
	out := map[types.NamespacedName]netip.Addr{}
	problems := map[types.NamespacedName][2]string{}
	taken := map[netip.Addr]types.NamespacedName{}
	for _, gw := range gws {
		k := objKey(&gw.ObjectMeta)
		var want netip.Addr
		for _, a := range gw.Spec.Addresses {
			if ip, err := netip.ParseAddr(a.Value); err == nil && a.Value != "" {
				want = ip
				break
			}
		}
		if !want.IsValid() {
			for _, a := range gw.Status.Addresses {
				if ip, err := netip.ParseAddr(a.Value); err == nil && pool.Contains(ip) {
					want = ip
					break
				}
			}
		}
		if !want.IsValid() || !pool.Contains(want) {
			continue
		}
		if old, ok := taken[want]; ok {
			problems[k] = [2]string{string(gwv1.GatewayReasonAddressNotUsable), fmt.Sprintf("address %s is taken by Gateway %s, which is older", want, old)}
			continue
		}
		out[k], taken[want] = want, k
	}
	next := pool.Addr().Next() // not the network address
	for _, gw := range gws {
		k := objKey(&gw.ObjectMeta)
		if _, ok := out[k]; ok || requestsAddress(gw) {
			continue
		}
		for _, used := taken[next]; used; _, used = taken[next] {
			next = next.Next()
		}
		if !pool.Contains(next) || (next.Is4() && pool.Bits() < 31 && !pool.Contains(next.Next())) {
			problems[k] = [2]string{string(gwv1.GatewayReasonAddressNotAssigned), fmt.Sprintf("the gateway address pool %s is exhausted", pool)}
			continue
		}
		out[k], taken[next] = next, k
	}
	return out, problems
}

// requestsAddress tells whether gw asks for a particular address (an
// entry of spec.addresses with a value; one without asks for any).
func requestsAddress(gw *gwv1.Gateway) bool {
	return slices.ContainsFunc(gw.Spec.Addresses, func(a gwv1.GatewaySpecAddress) bool { return a.Value != "" })
}

// addressProblem says what is wrong with a Gateway's spec.addresses: an
// address type other than IPAddress is not accepted (UnsupportedAddress);
// an address the proxy cannot serve — outside the gateway address pool,
// or without a pool not a node's — leaves the Gateway accepted but not
// programmed (AddressNotUsable).
func (b *builder) addressProblem(gw *gwv1.Gateway) (accepted bool, msg string) {
	for _, a := range gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType {
			return false, fmt.Sprintf("address type %q is not supported; skiff serves Gateways on IP addresses", *a.Type)
		}
	}
	for _, a := range gw.Spec.Addresses {
		if a.Value == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.Value)
		switch pool := b.in.GatewayPool; {
		case err != nil:
			return true, fmt.Sprintf("address %q is not an IP address", a.Value)
		case pool.IsValid() && !pool.Contains(ip):
			return true, fmt.Sprintf("address %s is outside the gateway address pool %s", a.Value, pool)
		case !pool.IsValid() && !slices.Contains(b.in.GatewayAddresses, ip.String()):
			return true, fmt.Sprintf("address %s is not a node address; without --gateway-address-pool, Gateways are served on the nodes' addresses (%s)", a.Value, strings.Join(b.in.GatewayAddresses, ", "))
		}
	}
	return true, ""
}

func objKey(m *metav1.ObjectMeta) types.NamespacedName {
	return types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
}

// olderObject orders objects by creation, then namespace/name.
func olderObject(a, b *metav1.ObjectMeta) int {
	if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// gatewayListener checks one listener and computes its status; a usable
// one gets its port in the table.
func (b *builder) gatewayListener(gw *gwv1.Gateway, addr netip.Addr, spec *gwv1.Listener, portProto map[int]Proto, claimed map[string]*gwListener) *gwListener {
	return b.gatewayListenerOf(gw, kindGateway, addr, spec, portProto, claimed)
}

// gatewayListenerOf is gatewayListener for a listener of a Gateway or (kind
// ListenerSet) of a ListenerSet, which gw then stands for.
func (b *builder) gatewayListenerOf(gw *gwv1.Gateway, kind string, addr netip.Addr, spec *gwv1.Listener, portProto map[int]Proto, claimed map[string]*gwListener) *gwListener {
	gen := gw.Generation
	l := &gwListener{gw: gw, kind: kind, addr: addr, table: b.t.ports, spec: spec, port: int(spec.Port), status: &gwv1.ListenerStatus{Name: spec.Name}}
	if addr.IsValid() {
		if b.t.byAddr[addr] == nil {
			b.t.byAddr[addr] = map[int]*listener{}
		}
		l.table = b.t.byAddr[addr]
	}
	if spec.Hostname != nil {
		l.hostname = normalizeHost(string(*spec.Hostname))
	}
	var conds []metav1.Condition
	accepted := condition(string(gwv1.ListenerConditionAccepted), true, string(gwv1.ListenerReasonAccepted), "Listener accepted", gen)
	resolved := condition(string(gwv1.ListenerConditionResolvedRefs), true, string(gwv1.ListenerReasonResolvedRefs), "All references resolved", gen)
	conflicted := condition(string(gwv1.ListenerConditionConflicted), false, string(gwv1.ListenerReasonNoConflicts), "No conflicts", gen)
	supported := []gwv1.RouteGroupKind{httpRouteKind, grpcRouteKind}
	switch spec.Protocol {
	case gwv1.HTTPProtocolType:
	case gwv1.HTTPSProtocolType:
		l.secure = true
	case gwv1.TLSProtocolType:
		l.secure = true
		l.passthrough = spec.TLS != nil && spec.TLS.Mode != nil && *spec.TLS.Mode == gwv1.TLSModePassthrough
		supported = []gwv1.RouteGroupKind{tlsRouteKind}
	case gwv1.TCPProtocolType:
		l.tcp = true
		supported = []gwv1.RouteGroupKind{tcpRouteKind}
	case gwv1.UDPProtocolType:
		l.udp = true
		supported = []gwv1.RouteGroupKind{udpRouteKind}
	default:
		accepted = condition(string(gwv1.ListenerConditionAccepted), false, string(gwv1.ListenerReasonUnsupportedProtocol),
			fmt.Sprintf("protocol %s is not supported yet; skiff serves HTTP, HTTPS, TLS, TCP and UDP listeners", spec.Protocol), gen)
	}
	// UDP port numbers are apart from TCP's: a UDP and a TCP listener
	// may share a number.
	claim := addr.String() + " " + strconv.Itoa(l.key()) + " " + l.hostname

	// Route kinds.
	l.kinds = supported
	if ar := spec.AllowedRoutes; ar != nil && len(ar.Kinds) > 0 {
		l.kinds = nil
		var bad []string
		for _, k := range ar.Kinds {
			ours := k.Group == nil || string(*k.Group) == gatewayGroup
			switch i := slices.IndexFunc(supported, func(s gwv1.RouteGroupKind) bool { return s.Kind == k.Kind }); {
			case ours && i >= 0:
				l.kinds = append(l.kinds, supported[i])
			default:
				g := ""
				if k.Group != nil {
					g = string(*k.Group)
				}
				bad = append(bad, g+"/"+string(k.Kind))
			}
		}
		if len(bad) > 0 {
			resolved = condition(string(gwv1.ListenerConditionResolvedRefs), false, string(gwv1.ListenerReasonInvalidRouteKinds),
				fmt.Sprintf("route kinds %s are not supported on a %s listener", strings.Join(bad, ", "), spec.Protocol), gen)
		}
	}
	if accepted.Status == metav1.ConditionFalse {
		l.kinds = nil // no route kind is served on an unsupported protocol
	}
	l.status.SupportedKinds = l.kinds
	if l.status.SupportedKinds == nil {
		l.status.SupportedKinds = []gwv1.RouteGroupKind{}
	}
	// Certificates.
	if l.secure && !l.passthrough && accepted.Status == metav1.ConditionTrue {
		if msg, reason := b.listenerCerts(gw, spec, l); msg != "" {
			resolved = condition(string(gwv1.ListenerConditionResolvedRefs), false, reason, msg, gen)
		}
	}
	// Ports: one protocol per port across every Gateway and the Ingresses,
	// and one listener per port and hostname.
	if accepted.Status == metav1.ConditionTrue {
		if proto, taken := portProto[l.key()]; taken && proto != l.proto() {
			conflicted = condition(string(gwv1.ListenerConditionConflicted), true, string(gwv1.ListenerReasonProtocolConflict),
				fmt.Sprintf("port %d is served as %s on the nodes", l.port, proto), gen)
		} else if old := claimed[claim]; old != nil {
			conflicted = condition(string(gwv1.ListenerConditionConflicted), true, string(gwv1.ListenerReasonHostnameConflict),
				fmt.Sprintf("port %d hostname %q is already served by listener %s of %s %s/%s", l.port, l.hostname, old.spec.Name, old.kind, old.gw.Namespace, old.gw.Name), gen)
		} else {
			portProto[l.key()] = l.proto()
		}
	}
	l.attachable = accepted.Status == metav1.ConditionTrue && conflicted.Status == metav1.ConditionFalse && len(l.kinds) > 0
	l.usable = l.attachable && (resolved.Status == metav1.ConditionTrue || resolved.Reason == string(gwv1.ListenerReasonInvalidRouteKinds))
	programmed := condition(string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), "Listener programmed", gen)
	if !l.usable {
		programmed = condition(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), "Listener is not served; see its other conditions", gen)
	} else {
		claimed[claim] = l
		if l.table[l.key()] == nil {
			l.table[l.key()] = newListener(l.secure)
			l.table[l.key()].tcp, l.table[l.key()].udp = l.tcp, l.udp
		}
		lt := l.table[l.key()]
		switch {
		case spec.Protocol == gwv1.TLSProtocolType:
			lt.tlsListenerHosts[l.hostname] = true
		case l.tcp || l.udp:
		default:
			if lt.gwHosts == nil {
				lt.gwHosts = map[string]bool{}
			}
			lt.gwHosts[l.hostname] = true
			lt.https = lt.https || l.secure
		}
		if l.cert != nil {
			lt := l.table[l.key()]
			if l.hostname == "" {
				if lt.defaultCert == nil {
					lt.defaultCert = l.cert
				}
			} else if _, taken := lt.certs[l.hostname]; !taken {
				lt.certs[l.hostname] = l.cert
			}
		}
	}
	conds = append(conds, accepted, resolved, conflicted, programmed)
	l.status.Conditions = conds
	return l
}

// listenerCerts loads an HTTPS listener's first certificate; it returns a
// message and reason when the references do not resolve.
func (b *builder) listenerCerts(gw *gwv1.Gateway, spec *gwv1.Listener, l *gwListener) (string, string) {
	if spec.TLS == nil || len(spec.TLS.CertificateRefs) == 0 {
		return fmt.Sprintf("a %s listener that terminates TLS needs tls.certificateRefs", spec.Protocol), string(gwv1.ListenerReasonInvalidCertificateRef)
	}
	if spec.Protocol == gwv1.HTTPSProtocolType && spec.TLS.Mode != nil && *spec.TLS.Mode != gwv1.TLSModeTerminate {
		return fmt.Sprintf("tls.mode %s is not supported on an HTTPS listener", *spec.TLS.Mode), string(gwv1.ListenerReasonInvalidCertificateRef)
	}
	for _, ref := range spec.TLS.CertificateRefs {
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
			return fmt.Sprintf("certificate reference %s is not a core Secret", ref.Name), string(gwv1.ListenerReasonInvalidCertificateRef)
		}
		ns := gw.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if ns != gw.Namespace && !b.granted(gw.Namespace, cmp.Or(l.kind, kindGateway), ns, "Secret", string(ref.Name)) {
			return fmt.Sprintf("Secret %s/%s is in another namespace and no ReferenceGrant there allows it", ns, ref.Name), string(gwv1.ListenerReasonRefNotPermitted)
		}
		c, err := b.certificate(ns, string(ref.Name))
		if err != nil {
			return fmt.Sprintf("Secret %s/%s: %v", ns, ref.Name, err), string(gwv1.ListenerReasonInvalidCertificateRef)
		}
		if l.cert == nil {
			l.cert = c
		}
	}
	return "", ""
}

// granted tells whether a ReferenceGrant in toNS lets objects of fromKind in
// fromNS refer to the toKind object named name.
func (b *builder) granted(fromNS, fromKind, toNS, toKind, name string) bool {
	fromGroup := gatewayGroup
	for _, g := range b.in.ReferenceGrants {
		if g.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gwv1.ReferenceGrantTo) bool {
			return t.Group == "" && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == name)
		})
		if from && to {
			return true
		}
	}
	return false
}

// allows tells whether l accepts HTTPRoutes from namespace ns.
func (b *builder) allows(l *gwListener, ns string) bool {
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		sel = ar.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == l.gw.Namespace
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		for _, n := range b.in.Namespaces {
			if n.Name == ns {
				return s.Matches(labels.Set(n.Labels))
			}
		}
	}
	return false
}

// intersectHost is the hostname a listener hostname and a route hostname
// both match, "" (any) when both are empty; ok is false when they share
// none. Gateway API wildcards match one or more labels.
func intersectHost(listener, route string) (string, bool) {
	switch {
	case listener == "":
		return route, true
	case route == "":
		return listener, true
	case listener == route:
		return route, true
	}
	lw, rw := strings.HasPrefix(listener, "*."), strings.HasPrefix(route, "*.")
	switch {
	case lw && !rw && strings.HasSuffix(route, listener[1:]):
		return route, true
	case !lw && rw && strings.HasSuffix(listener, route[1:]):
		return listener, true
	case lw && rw:
		if strings.HasSuffix(route, listener[1:]) {
			return route, true
		}
		if strings.HasSuffix(listener, route[1:]) {
			return listener, true
		}
	}
	return "", false
}

// gwRoute is an HTTPRoute, or a GRPCRoute, TLSRoute, TCPRoute or UDPRoute
// put in HTTPRoute terms (grpcAsHTTP, streamAsHTTP), with the kind it came
// as.
type gwRoute struct {
	kind string
	*gwv1.HTTPRoute
	// mesh: the route is resolved for its Service parents (GAMMA), whose
	// backendRefs reach other namespaces without a ReferenceGrant.
	mesh bool
}

func (r gwRoute) groupKind() gwv1.RouteGroupKind {
	switch r.kind {
	case KindGRPCRoute:
		return grpcRouteKind
	case KindTLSRoute:
		return tlsRouteKind
	case KindTCPRoute:
		return tcpRouteKind
	case KindUDPRoute:
		return udpRouteKind
	}
	return httpRouteKind
}

// addRoutes attaches the routes of every kind to the listeners of served
// Gateways and computes their parent statuses.
func (b *builder) addRoutes(ctrl string, byGateway map[types.NamespacedName][]*gwListener, sets *listenerSets) {
	routes := make([]gwRoute, 0, len(b.in.HTTPRoutes)+len(b.in.GRPCRoutes))
	for _, hr := range b.in.HTTPRoutes {
		routes = append(routes, gwRoute{kind: KindHTTPRoute, HTTPRoute: hr})
	}
	for _, gr := range b.in.GRPCRoutes {
		routes = append(routes, gwRoute{kind: KindGRPCRoute, HTTPRoute: grpcAsHTTP(gr)})
	}
	for _, tr := range b.in.TLSRoutes {
		routes = append(routes, gwRoute{kind: KindTLSRoute, HTTPRoute: streamAsHTTP(tr.ObjectMeta, tr.Spec.CommonRouteSpec, tr.Spec.Hostnames, streamRules(tr.Spec.Rules, func(r gwv1.TLSRouteRule) (*gwv1.SectionName, []gwv1.BackendRef) { return r.Name, r.BackendRefs }))})
	}
	for _, tr := range b.in.TCPRoutes {
		routes = append(routes, gwRoute{kind: KindTCPRoute, HTTPRoute: streamAsHTTP(tr.ObjectMeta, tr.Spec.CommonRouteSpec, nil, streamRules(tr.Spec.Rules, func(r gwv1.TCPRouteRule) (*gwv1.SectionName, []gwv1.BackendRef) { return r.Name, r.BackendRefs }))})
	}
	for _, ur := range b.in.UDPRoutes {
		routes = append(routes, gwRoute{kind: KindUDPRoute, HTTPRoute: streamAsHTTP(ur.ObjectMeta, ur.Spec.CommonRouteSpec, nil, streamRules(ur.Spec.Rules, func(r gwv1.UDPRouteRule) (*gwv1.SectionName, []gwv1.BackendRef) { return r.Name, r.BackendRefs }))})
	}
	slices.SortFunc(routes, func(a, c gwRoute) int { return olderObject(&a.ObjectMeta, &c.ObjectMeta) })
	for ri, hr := range routes {
		var parents []gwv1.RouteParentStatus
		var action, meshAction []*RuleAction
		resolved := condition(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "All references resolved", hr.Generation)
		meshResolved := resolved
		for _, ref := range hr.Spec.ParentRefs {
			if serviceParent(ref) {
				if hr.kind != KindHTTPRoute && hr.kind != KindGRPCRoute {
					continue // TLSRoutes, TCPRoutes and UDPRoutes are not served in the mesh
				}
				if meshAction == nil {
					meshAction, meshResolved = b.httpRouteActions(gwRoute{kind: hr.kind, HTTPRoute: hr.HTTPRoute, mesh: true})
				}
				parents = append(parents, gwv1.RouteParentStatus{
					ParentRef:      ref,
					ControllerName: gwv1.GatewayController(ctrl),
					Conditions:     []metav1.Condition{b.attachService(hr, ref, meshAction, ri), meshResolved},
				})
				continue
			}
			kind := cmp.Or(string(ptrValue(ref.Kind)), kindGateway)
			if (ref.Group != nil && string(*ref.Group) != gatewayGroup) || (kind != kindGateway && kind != kindListenerSet) {
				continue
			}
			ns := hr.Namespace
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			parent := types.NamespacedName{Namespace: ns, Name: string(ref.Name)}
			ls, ours := byGateway[parent]
			gwKey := parent // the Gateway, for the policies' ancestors
			if kind == kindListenerSet {
				ls, ours = sets.listeners[parent]
				gwKey = sets.parent[parent]
			}
			if !ours {
				continue
			}
			if action == nil {
				action, resolved = b.httpRouteActions(hr)
			}
			accepted := b.attach(hr, ref, ls, action, ri)
			if accepted.Status == metav1.ConditionTrue {
				b.policies.use(gwKey, action)
				b.tls.use(gwKey, action)
			}
			parents = append(parents, gwv1.RouteParentStatus{
				ParentRef:      ref,
				ControllerName: gwv1.GatewayController(ctrl),
				Conditions:     []metav1.Condition{accepted, resolved},
			})
		}
		switch {
		case parents == nil:
		case hr.kind == KindGRPCRoute:
			b.t.Gateway.GRPCRoutes[objKey(&hr.ObjectMeta)] = parents
		case hr.kind == KindTLSRoute:
			b.t.Gateway.TLSRoutes[objKey(&hr.ObjectMeta)] = parents
		case hr.kind == KindTCPRoute:
			b.t.Gateway.TCPRoutes[objKey(&hr.ObjectMeta)] = parents
		case hr.kind == KindUDPRoute:
			b.t.Gateway.UDPRoutes[objKey(&hr.ObjectMeta)] = parents
		default:
			b.t.Gateway.Routes[objKey(&hr.ObjectMeta)] = parents
		}
	}
}

// attach adds hr's rules to the listeners of one parentRef that accept it,
// and returns the parent's Accepted condition.
func (b *builder) attach(hr gwRoute, ref gwv1.ParentReference, ls []*gwListener, action []*RuleAction, ri int) metav1.Condition {
	gen := hr.Generation
	var cands []*gwListener
	for _, l := range ls {
		if ref.SectionName != nil && *ref.SectionName != l.spec.Name {
			continue
		}
		if ref.Port != nil && int(*ref.Port) != l.port {
			continue
		}
		cands = append(cands, l)
	}
	if len(cands) == 0 {
		return condition(string(gwv1.RouteConditionAccepted), false, string(gwv1.RouteReasonNoMatchingParent), "no listener of the Gateway matches the parentRef's sectionName and port", gen)
	}
	var allowed []*gwListener
	for _, l := range cands {
		if l.attachable && slices.Contains(l.kinds, hr.groupKind()) && b.allows(l, hr.Namespace) {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return condition(string(gwv1.RouteConditionAccepted), false, string(gwv1.RouteReasonNotAllowedByListeners), "no listener of the Gateway allows this route (namespace, kind, or the listener is not valid)", gen)
	}
	attached := false
	for _, l := range allowed {
		hosts := []string{}
		if len(hr.Spec.Hostnames) == 0 {
			hosts = append(hosts, l.hostname)
		}
		for _, h := range hr.Spec.Hostnames {
			if got, ok := intersectHost(l.hostname, normalizeHost(string(h))); ok {
				hosts = append(hosts, got)
			}
		}
		if len(hosts) == 0 {
			continue
		}
		attached = true
		l.status.AttachedRoutes++
		if l.usable {
			b.addRules(hr, l, hosts, action, ri)
		}
	}
	if !attached {
		return condition(string(gwv1.RouteConditionAccepted), false, string(gwv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route matches a listener's hostname", gen)
	}
	return condition(string(gwv1.RouteConditionAccepted), true, string(gwv1.RouteReasonAccepted), "Route accepted", gen)
}

// addRules files a route's matches under each hostname on l's port.
func (b *builder) addRules(hr gwRoute, l *gwListener, hosts []string, action []*RuleAction, ri int) {
	lt := l.table[l.key()]
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	if hr.kind == KindTLSRoute {
		// One rule (the CRD allows no more); the oldest route keeps a
		// hostname.
		for _, h := range hosts {
			if _, taken := lt.tlsRoutes[h]; !taken && len(action) > 0 {
				lt.tlsRoutes[h] = &StreamRoute{Kind: KindTLSRoute, Source: objKey(&hr.ObjectMeta), Host: h, Terminate: !l.passthrough, Rule: action[0]}
			}
		}
		return
	}
	if hr.kind == KindTCPRoute || hr.kind == KindUDPRoute {
		// The oldest route attached serves the listener (the others are
		// attached and counted, but get no traffic).
		if lt.portRoute == nil && len(action) > 0 {
			lt.portRoute = &StreamRoute{Kind: hr.kind, Source: objKey(&hr.ObjectMeta), Rule: action[0]}
		}
		return
	}
	for i, rule := range hr.Spec.Rules {
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for mi, m := range matches {
			path, pt, cond := routeMatch(m)
			for _, h := range hosts {
				lt.addGateway(&Route{
					Kind: hr.kind, Source: objKey(&hr.ObjectMeta),
					Host: h, Path: path, PathType: pt,
					Cond: cond, Rule: action[i],
					order:        ri<<20 | i<<10 | mi,
					listenerHost: l.hostname,
				})
			}
		}
	}
}

// routeMatch turns one HTTPRoute match into a path, path type and the rest.
// Matches the CRD's validation refuses (an invalid regular expression) are
// given a condition no request meets.
func routeMatch(m gwv1.HTTPRouteMatch) (string, networkingv1.PathType, *RequestMatch) {
	path, pt := "/", networkingv1.PathTypePrefix
	cond := &RequestMatch{}
	if m.Path != nil {
		if m.Path.Value != nil {
			path = *m.Path.Value
		}
		if m.Path.Type != nil {
			switch *m.Path.Type {
			case gwv1.PathMatchExact:
				pt = networkingv1.PathTypeExact
			case gwv1.PathMatchRegularExpression:
				pt = pathRegex
				cond.PathRegexp = compileAnchored(path)
			}
		}
	}
	if pt == networkingv1.PathTypePrefix {
		path = normalizePath(path, pt)
	}
	if m.Method != nil {
		cond.Method = string(*m.Method)
	}
	for _, h := range m.Headers {
		v := ValueMatch{Name: string(h.Name), Value: h.Value}
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			v.Regexp = compileAnchored(h.Value)
		}
		cond.Headers = append(cond.Headers, v)
	}
	for _, q := range m.QueryParams {
		v := ValueMatch{Name: string(q.Name), Value: q.Value}
		if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
			v.Regexp = compileAnchored(q.Value)
		}
		cond.Query = append(cond.Query, v)
	}
	return path, pt, cond
}

// neverMatches is the expression of an invalid one: it matches nothing.
var neverMatches = regexp.MustCompile(`a\A`)

// compileAnchored compiles a full-match regular expression (RE2 syntax).
func compileAnchored(expr string) *regexp.Regexp {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return neverMatches
	}
	return re
}

// addGateway files an HTTPRoute match. Gateway API wildcards cover one or
// more labels, so they are kept apart from the Ingress ones.
func (l *listener) addGateway(r *Route) {
	if strings.HasPrefix(r.Host, "*.") {
		if l.gwWildcard == nil {
			l.gwWildcard = map[string]hostRoutes{}
		}
		l.gwWildcard[r.Host[2:]] = append(l.gwWildcard[r.Host[2:]], r)
		return
	}
	l.add(r)
}

// httpRouteActions resolves each rule of hr; it returns the route's
// ResolvedRefs condition.
func (b *builder) httpRouteActions(hr gwRoute) ([]*RuleAction, metav1.Condition) {
	gen := hr.Generation
	resolved := condition(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "All references resolved", gen)
	fail := func(reason, msg string) {
		if resolved.Status == metav1.ConditionTrue {
			resolved = condition(string(gwv1.RouteConditionResolvedRefs), false, reason, msg, gen)
		}
	}
	out := make([]*RuleAction, len(hr.Spec.Rules))
	for i, rule := range hr.Spec.Rules {
		a := &RuleAction{}
		out[i] = a
		pol := Policy{Balance: RoundRobin, ReadTimeout: DefaultReadTimeout}
		if t := rule.Timeouts; t != nil {
			if t.Request != nil {
				if d, err := time.ParseDuration(string(*t.Request)); err == nil {
					a.Timeout = d
				}
			}
			if t.BackendRequest != nil {
				if d, err := time.ParseDuration(string(*t.BackendRequest)); err == nil && d > 0 {
					pol.ReadTimeout = d
				}
			}
		}
		if rt := rule.Retry; rt != nil {
			a.Retry = &Retry{Attempts: DefaultRetryAttempts, Backoff: DefaultRetryBackoff}
			for _, c := range rt.Codes {
				a.Retry.Codes = append(a.Retry.Codes, int(c))
			}
			if rt.Attempts != nil && *rt.Attempts > 0 {
				a.Retry.Attempts = *rt.Attempts
			}
			if rt.Backoff != nil {
				if d, err := time.ParseDuration(string(*rt.Backoff)); err == nil && d >= 0 {
					a.Retry.Backoff = d
				}
			}
		}
		if sp := rule.SessionPersistence; sp != nil && (sp.Type == nil || *sp.Type == gwv1.CookieBasedSessionPersistence) {
			pol.AffinityCookie = cmp.Or(ptrValue(sp.SessionName), DefaultAffinityCookie)
		}
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier:
				a.RequestHeaders = headerModifier(f.RequestHeaderModifier)
			case gwv1.HTTPRouteFilterResponseHeaderModifier:
				a.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
			case gwv1.HTTPRouteFilterRequestRedirect:
				a.Redirect = redirect(f.RequestRedirect)
			case gwv1.HTTPRouteFilterURLRewrite:
				if f.URLRewrite != nil {
					a.Rewrite = &Rewrite{Hostname: string(ptrValue(f.URLRewrite.Hostname)), Path: pathModifier(f.URLRewrite.Path)}
				}
			case gwv1.HTTPRouteFilterCORS:
				a.CORS = newCORS(f.CORS)
			case gwv1.HTTPRouteFilterRequestMirror:
				if f.RequestMirror == nil {
					continue
				}
				be, reason, msg := b.routeBackend(hr, f.RequestMirror.BackendRef, pol)
				if reason != "" {
					fail(reason, msg)
					continue
				}
				fraction := 1.0
				switch f := f.RequestMirror; {
				case f.Percent != nil:
					fraction = float64(*f.Percent) / 100
				case f.Fraction != nil && f.Fraction.Denominator != nil && *f.Fraction.Denominator > 0:
					fraction = float64(f.Fraction.Numerator) / float64(*f.Fraction.Denominator)
				case f.Fraction != nil:
					fraction = float64(f.Fraction.Numerator) / 100
				}
				a.Mirrors = append(a.Mirrors, Mirror{Backend: be, Fraction: fraction})
			default:
				a.Invalid = fmt.Sprintf("filter %s is not supported by skiff", f.Type)
			}
		}
		for _, ref := range rule.BackendRefs {
			w := 1
			if ref.Weight != nil {
				w = int(*ref.Weight)
			}
			be, reason, msg := b.routeBackend(hr, ref.BackendObjectReference, pol)
			if reason != "" {
				fail(reason, msg)
			}
			if w > 0 {
				wb := WeightedBackend{Backend: be, Weight: w}
				for _, f := range ref.Filters {
					switch f.Type {
					case gwv1.HTTPRouteFilterRequestHeaderModifier:
						wb.RequestHeaders = headerModifier(f.RequestHeaderModifier)
					default:
						a.Invalid = fmt.Sprintf("backendRef filter %s is not supported by skiff", f.Type)
					}
				}
				a.Backends = append(a.Backends, wb)
			}
		}
		if len(a.Backends) == 0 && a.Redirect == nil && a.Invalid == "" {
			a.Invalid = "the rule has no backend with a weight above 0"
		}
		a.picker = newWeightedPicker(a.Backends)
	}
	return out, resolved
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func headerModifier(f *gwv1.HTTPHeaderFilter) *HeaderModifier {
	if f == nil {
		return nil
	}
	m := &HeaderModifier{Remove: f.Remove}
	for _, h := range f.Set {
		m.Set = append(m.Set, ValueMatch{Name: string(h.Name), Value: h.Value})
	}
	for _, h := range f.Add {
		m.Add = append(m.Add, ValueMatch{Name: string(h.Name), Value: h.Value})
	}
	return m
}

func pathModifier(p *gwv1.HTTPPathModifier) *PathModifier {
	if p == nil {
		return nil
	}
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		return &PathModifier{Full: p.ReplaceFullPath}
	case gwv1.PrefixMatchHTTPPathModifier:
		return &PathModifier{Prefix: p.ReplacePrefixMatch}
	}
	return nil
}

func redirect(f *gwv1.HTTPRequestRedirectFilter) *Redirect {
	if f == nil {
		return nil
	}
	r := &Redirect{
		Scheme:     ptrValue(f.Scheme),
		Hostname:   string(ptrValue(f.Hostname)),
		Path:       pathModifier(f.Path),
		StatusCode: cmp.Or(ptrValue(f.StatusCode), 302),
	}
	if f.Port != nil {
		r.Port = int(*f.Port)
	}
	return r
}

// routeBackend resolves a backendRef of hr; reason and message say why it
// cannot be used (the Backend then has Missing set). A Service in another
// namespace needs a ReferenceGrant there, except for the mesh (GEP-1294:
// its routes reach no further than their clients could themselves).
func (b *builder) routeBackend(hr gwRoute, ref gwv1.BackendObjectReference, pol Policy) (*Backend, string, string) {
	ns := hr.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	port := ""
	if ref.Port != nil {
		port = strconv.Itoa(int(*ref.Port))
	}
	bad := func(reason, msg string) (*Backend, string, string) {
		return &Backend{Namespace: ns, Service: string(ref.Name), Port: port, Missing: msg, Policy: pol}, reason, msg
	}
	if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Service") {
		return bad(string(gwv1.RouteReasonInvalidKind), fmt.Sprintf("backend %s is a %s/%s; skiff supports core Services", ref.Name, ptrValue(ref.Group), ptrValue(ref.Kind)))
	}
	if ns != hr.Namespace && !hr.mesh && !b.granted(hr.Namespace, hr.kind, ns, "Service", string(ref.Name)) {
		return bad(string(gwv1.RouteReasonRefNotPermitted), fmt.Sprintf("service %s/%s is in another namespace and no ReferenceGrant there allows it", ns, ref.Name))
	}
	if ref.Port == nil {
		return bad(string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backend %s names no port", ref.Name))
	}
	proto := corev1.ProtocolTCP
	if hr.kind == KindUDPRoute {
		proto = corev1.ProtocolUDP
	}
	// The Service may choose the balancing (the Ingress annotations, on
	// the Service): Gateway API has no standard-channel place for it.
	if svc := b.service(ns, string(ref.Name)); svc != nil {
		if _, ok := svc.Annotations[AnnLoadBalance]; ok {
			sp, _ := parsePolicy(svc.Annotations)
			pol.Balance, pol.HashOn, pol.HashName = sp.Balance, sp.HashOn, sp.HashName
		}
	}
	// An XBackendTrafficPolicy's sessionPersistence, where the rule has
	// none of its own.
	if pol.AffinityCookie == "" && b.policies != nil {
		pol.AffinityCookie = b.policies.affinityCookie(ns, string(ref.Name))
	}
	// Its retryConstraint: the Service's retry budget.
	if b.policies != nil {
		pol.RetryBudget = b.policies.retryBudget(ns, string(ref.Name))
	}
	// A BackendTLSPolicy on the Service (or this port of it): TLS to the
	// endpoints; an invalid one fails the requests (5xx), the route stands.
	var btls *BackendTLS
	if b.tls != nil && proto == corev1.ProtocolTCP && hr.kind != KindTLSRoute && hr.kind != KindTCPRoute {
		portName := ""
		if svc := b.service(ns, string(ref.Name)); svc != nil {
			for _, p := range svc.Spec.Ports {
				if p.Port == int32(*ref.Port) {
					portName = p.Name
				}
			}
		}
		var invalid string
		if btls, invalid = b.tls.lookup(types.NamespacedName{Namespace: ns, Name: string(ref.Name)}, portName); invalid != "" {
			return &Backend{Namespace: ns, Service: string(ref.Name), Port: port, Missing: invalid, Policy: pol}, "", ""
		}
	}
	be := b.cachedTLSBackend(ns, string(ref.Name), networkingv1.ServiceBackendPort{Number: int32(*ref.Port)}, proto, pol, btls)
	if be.Missing != "" {
		return be, string(gwv1.RouteReasonBackendNotFound), be.Missing
	}
	return be, "", ""
}

// grpcAsHTTP puts a GRPCRoute in HTTPRoute terms: a gRPC call is an HTTP/2
// request to /SERVICE/METHOD, so a method match is a path match (exact for
// a service and method, a prefix for a service alone, a regular expression
// otherwise), and the filters and backendRefs gRPC allows are HTTPRoute's.
func grpcAsHTTP(gr *gwv1.GRPCRoute) *gwv1.HTTPRoute {
	hr := &gwv1.HTTPRoute{ObjectMeta: gr.ObjectMeta}
	hr.Spec.CommonRouteSpec = gr.Spec.CommonRouteSpec
	hr.Spec.Hostnames = gr.Spec.Hostnames
	for _, rule := range gr.Spec.Rules {
		hrule := gwv1.HTTPRouteRule{Name: rule.Name, SessionPersistence: rule.SessionPersistence}
		for _, m := range rule.Matches {
			hm := gwv1.HTTPRouteMatch{Path: grpcPath(m.Method)}
			for _, h := range m.Headers {
				t := gwv1.HeaderMatchExact
				if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
					t = gwv1.HeaderMatchRegularExpression
				}
				hm.Headers = append(hm.Headers, gwv1.HTTPHeaderMatch{Type: &t, Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value})
			}
			hrule.Matches = append(hrule.Matches, hm)
		}
		hrule.Filters = grpcFilters(rule.Filters)
		for _, ref := range rule.BackendRefs {
			hrule.BackendRefs = append(hrule.BackendRefs, gwv1.HTTPBackendRef{BackendRef: ref.BackendRef, Filters: grpcFilters(ref.Filters)})
		}
		hr.Spec.Rules = append(hr.Spec.Rules, hrule)
	}
	return hr
}

// grpcPath is the path match of a GRPCRoute method match (nil: any path).
func grpcPath(m *gwv1.GRPCMethodMatch) *gwv1.HTTPPathMatch {
	if m == nil || (m.Service == nil && m.Method == nil) {
		return nil
	}
	service, method := ptrValue(m.Service), ptrValue(m.Method)
	if m.Type != nil && *m.Type == gwv1.GRPCMethodMatchRegularExpression {
		// Each part matches whole, within its path segment.
		return &gwv1.HTTPPathMatch{Type: ptrTo(gwv1.PathMatchRegularExpression),
			Value: ptrTo("/(?:" + cmp.Or(service, "[^/]+") + ")/(?:" + cmp.Or(method, "[^/]+") + ")")}
	}
	switch {
	case m.Method == nil:
		return &gwv1.HTTPPathMatch{Type: ptrTo(gwv1.PathMatchPathPrefix), Value: ptrTo("/" + service)}
	case m.Service == nil:
		return &gwv1.HTTPPathMatch{Type: ptrTo(gwv1.PathMatchRegularExpression), Value: ptrTo("/[^/]+/" + regexp.QuoteMeta(method))}
	}
	return &gwv1.HTTPPathMatch{Type: ptrTo(gwv1.PathMatchExact), Value: ptrTo("/" + service + "/" + method)}
}

// grpcFilters are GRPCRoute filters as HTTPRoute ones; the types share
// their names and their configuration.
func grpcFilters(fs []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	var out []gwv1.HTTPRouteFilter
	for _, f := range fs {
		out = append(out, gwv1.HTTPRouteFilter{
			Type:                   gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		})
	}
	return out
}

// streamAsHTTP puts a TLSRoute, TCPRoute or UDPRoute in HTTPRoute terms for
// attachment and backend resolution: its rules are backendRefs without
// matches or filters.
func streamAsHTTP(meta metav1.ObjectMeta, common gwv1.CommonRouteSpec, hostnames []gwv1.Hostname, rules []gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	hr := &gwv1.HTTPRoute{ObjectMeta: meta}
	hr.Spec.CommonRouteSpec = common
	hr.Spec.Hostnames = hostnames
	hr.Spec.Rules = rules
	return hr
}

// streamRules are the rules of a TLSRoute, TCPRoute or UDPRoute (a name and
// backendRefs each) as HTTPRoute rules.
func streamRules[R any](rules []R, parts func(R) (*gwv1.SectionName, []gwv1.BackendRef)) []gwv1.HTTPRouteRule {
	out := make([]gwv1.HTTPRouteRule, len(rules))
	for i, rule := range rules {
		name, refs := parts(rule)
		out[i].Name = name
		for _, ref := range refs {
			out[i].BackendRefs = append(out[i].BackendRefs, gwv1.HTTPBackendRef{BackendRef: ref})
		}
	}
	return out
}

func (l *gwListener) proto() Proto { return protoOf(l.tcp, l.udp, l.secure) }

// key is l's port in the Table: its number, or udpPortKey of it for UDP.
func (l *gwListener) key() int {
	if l.udp {
		return udpPortKey(l.port)
	}
	return l.port
}
