package ingress

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
	gwxlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apisx/v1alpha1"

	"github.com/skiffdev/skiff/internal/changes"
	"github.com/skiffdev/skiff/internal/crds"
)

// gatewayResources are the kinds the Gateway API informers need served.
var gatewayResources = []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "udproutes", "referencegrants", "backendtlspolicies", "listenersets"}

// discoveryInterval is how often the API server is asked whether it serves
// the Gateway API yet.
const discoveryInterval = 10 * time.Second

// gatewayCaches are the Gateway API informers: started once the API
// server serves their kinds (the server installs the CRDs after it
// starts, and a server may run without them).
type gatewayCaches struct {
	started atomic.Bool
	synced  []cache.InformerSynced

	classes    gwlisters.GatewayClassLister
	gateways   gwlisters.GatewayLister
	routes     gwlisters.HTTPRouteLister
	grpcRoutes gwlisters.GRPCRouteLister
	tlsRoutes  gwlisters.TLSRouteLister
	tcpRoutes  gwlisters.TCPRouteLister
	udpRoutes  gwlisters.UDPRouteLister
	grants     gwlisters.ReferenceGrantLister
	namespaces corelisters.NamespaceLister
	// tlsPolicies and the ConfigMaps their CA certificates are in.
	tlsPolicies  gwlisters.BackendTLSPolicyLister
	listenerSets gwlisters.ListenerSetLister
	configMaps   corelisters.ConfigMapLister
	// policies, on the experimental channel only.
	policies gwxlisters.XBackendTrafficPolicyLister

	factory gwinformers.SharedInformerFactory
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// gatewayInformers sets up the Gateway API caches when the controller has a
// Gateway client; nil otherwise. Namespaces come from core, the factory of
// the other informers, which the caller has already started.
func (c *Controller) gatewayInformers(ctx context.Context, core informers.SharedInformerFactory, changed *changes.Signal) *gatewayCaches {
	if c.cfg.GatewayClient == nil {
		return nil
	}
	g := &gatewayCaches{factory: gwinformers.NewSharedInformerFactoryWithOptions(c.cfg.GatewayClient, 0,
		gwinformers.WithTransform(stripManagedFields))}
	v1 := g.factory.Gateway().V1()
	classes, gws, routes, grants := v1.GatewayClasses(), v1.Gateways(), v1.HTTPRoutes(), v1.ReferenceGrants()
	grpcRoutes, tlsRoutes, tcpRoutes, udpRoutes := v1.GRPCRoutes(), v1.TLSRoutes(), v1.TCPRoutes(), v1.UDPRoutes()
	ns := core.Core().V1().Namespaces()
	cms := core.Core().V1().ConfigMaps()
	tlsPolicies, sets := v1.BackendTLSPolicies(), v1.ListenerSets()
	g.configMaps, g.tlsPolicies, g.listenerSets = cms.Lister(), tlsPolicies.Lister(), sets.Lister()
	g.classes, g.gateways, g.routes, g.grants = classes.Lister(), gws.Lister(), routes.Lister(), grants.Lister()
	g.grpcRoutes, g.tlsRoutes, g.tcpRoutes, g.udpRoutes = grpcRoutes.Lister(), tlsRoutes.Lister(), tcpRoutes.Lister(), udpRoutes.Lister()
	g.namespaces = ns.Lister()
	infs := []cache.SharedIndexInformer{classes.Informer(), gws.Informer(), routes.Informer(), grpcRoutes.Informer(), tlsRoutes.Informer(), tcpRoutes.Informer(), udpRoutes.Informer(), grants.Informer(), ns.Informer(), cms.Informer(), tlsPolicies.Informer(), sets.Informer()}
	if c.cfg.ExperimentalGatewayAPI {
		policies := g.factory.Experimental().V1alpha1().XBackendTrafficPolicies()
		g.policies = policies.Lister()
		infs = append(infs, policies.Informer())
	}
	for _, inf := range infs {
		g.synced = append(g.synced, inf.HasSynced)
	}
	if err := changed.Watch(infs...); err != nil {
		c.cfg.Log.Warn("watch Gateway API objects", "err", err)
		return nil
	}
	ctx, g.cancel = context.WithCancel(ctx)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for !c.servesGatewayAPI() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(discoveryInterval):
			}
		}
		core.Start(ctx.Done()) // the Namespace informer, registered after the first Start
		g.factory.Start(ctx.Done())
		g.started.Store(true)
	}()
	return g
}

// servesGatewayAPI tells whether the API server serves every kind the
// Gateway API caches list.
func (c *Controller) servesGatewayAPI() bool {
	disc := c.cfg.Client.Discovery()
	return crds.Served(disc, gwv1.GroupVersion.String(), gatewayResources...) &&
		(!c.cfg.ExperimentalGatewayAPI || crds.Served(disc, gwxv1a1.GroupVersion.String(), "xbackendtrafficpolicies"))
}

// fill adds the Gateway API objects to in; synced tells whether the caches
// hold the whole cluster's (statuses are written only then).
func (g *gatewayCaches) fill(in *State) (synced bool, err error) {
	if g == nil || !g.started.Load() {
		return false, nil
	}
	all := labels.Everything()
	var errs [13]error
	in.GatewayClasses, errs[0] = g.classes.List(all)
	in.Gateways, errs[1] = g.gateways.List(all)
	in.HTTPRoutes, errs[2] = g.routes.List(all)
	in.GRPCRoutes, errs[3] = g.grpcRoutes.List(all)
	in.TLSRoutes, errs[4] = g.tlsRoutes.List(all)
	in.TCPRoutes, errs[5] = g.tcpRoutes.List(all)
	in.UDPRoutes, errs[6] = g.udpRoutes.List(all)
	in.ReferenceGrants, errs[7] = g.grants.List(all)
	in.Namespaces, errs[8] = g.namespaces.List(all)
	if g.policies != nil {
		in.BackendTrafficPolicies, errs[9] = g.policies.List(all)
	}
	in.BackendTLSPolicies, errs[10] = g.tlsPolicies.List(all)
	in.ConfigMaps, errs[11] = g.configMaps.List(all)
	in.ListenerSets, errs[12] = g.listenerSets.List(all)
	if err := errors.Join(errs[:]...); err != nil {
		return false, err
	}
	for _, s := range g.synced {
		if !s() {
			return false, nil
		}
	}
	return true, nil
}

func (g *gatewayCaches) shutdown() {
	if g == nil {
		return
	}
	g.cancel()
	g.wg.Wait()
	g.factory.Shutdown()
}

// mergeConditions returns want with each condition's lastTransitionTime
// kept from have when its status did not change, now otherwise.
func mergeConditions(have, want []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.LastTransitionTime = now
		for _, h := range have {
			if h.Type == c.Type && h.Status == c.Status {
				c.LastTransitionTime = h.LastTransitionTime
			}
		}
		out[i] = c
	}
	return out
}

// writeGatewayStatus publishes the statuses t computed for GatewayClasses,
// Gateways and HTTPRoutes, where they differ from the objects'.
func (c *Controller) writeGatewayStatus(ctx context.Context, t *Table, in State) {
	now := metav1.Now()
	client := c.cfg.GatewayClient.GatewayV1()
	warn := func(kind string, k types.NamespacedName, err error) {
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			c.cfg.Log.Warn("update status", "kind", kind, "name", k.String(), "err", err)
		}
	}
	for _, gc := range in.GatewayClasses {
		want, ok := t.Gateway.Classes[gc.Name]
		if !ok {
			continue
		}
		st := gc.Status.DeepCopy()
		st.Conditions = mergeConditions(gc.Status.Conditions, want, now)
		st.SupportedFeatures = SupportedFeatures(c.cfg.ExperimentalGatewayAPI)
		if equality.Semantic.DeepEqual(st, &gc.Status) {
			continue
		}
		up := gc.DeepCopy()
		up.Status = *st
		_, err := client.GatewayClasses().UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("GatewayClass", types.NamespacedName{Name: gc.Name}, err)
	}
	for _, gw := range in.Gateways {
		k := objKey(&gw.ObjectMeta)
		want := t.Gateway.Gateways[k]
		if want == nil {
			continue
		}
		st := want.DeepCopy()
		st.Conditions = mergeConditions(gw.Status.Conditions, want.Conditions, now)
		mergeListenerConditions(gw.Status.Listeners, st.Listeners, now,
			func(l *gwv1.ListenerStatus) (gwv1.SectionName, *[]metav1.Condition) { return l.Name, &l.Conditions })
		if equality.Semantic.DeepEqual(st, &gw.Status) {
			continue
		}
		up := gw.DeepCopy()
		up.Status = *st
		_, err := client.Gateways(gw.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("Gateway", k, err)
	}
	for _, set := range in.ListenerSets {
		k := objKey(&set.ObjectMeta)
		want := t.Gateway.ListenerSets[k]
		if want == nil {
			continue
		}
		st := want.DeepCopy()
		st.Conditions = mergeConditions(set.Status.Conditions, want.Conditions, now)
		mergeListenerConditions(set.Status.Listeners, st.Listeners, now,
			func(l *gwv1.ListenerEntryStatus) (gwv1.SectionName, *[]metav1.Condition) {
				return l.Name, &l.Conditions
			})
		if equality.Semantic.DeepEqual(st, &set.Status) {
			continue
		}
		up := set.DeepCopy()
		up.Status = *st
		_, err := client.ListenerSets(set.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("ListenerSet", k, err)
	}
	writeStatuses(ctx, KindHTTPRoute, in.HTTPRoutes, t.Gateway.Routes, now, warn,
		func(r *gwv1.HTTPRoute) *[]gwv1.RouteParentStatus { return &r.Status.Parents }, routeParents,
		func(ns string) statusUpdater[*gwv1.HTTPRoute] { return client.HTTPRoutes(ns) })
	writeStatuses(ctx, KindGRPCRoute, in.GRPCRoutes, t.Gateway.GRPCRoutes, now, warn,
		func(r *gwv1.GRPCRoute) *[]gwv1.RouteParentStatus { return &r.Status.Parents }, routeParents,
		func(ns string) statusUpdater[*gwv1.GRPCRoute] { return client.GRPCRoutes(ns) })
	writeStatuses(ctx, KindTLSRoute, in.TLSRoutes, t.Gateway.TLSRoutes, now, warn,
		func(r *gwv1.TLSRoute) *[]gwv1.RouteParentStatus { return &r.Status.Parents }, routeParents,
		func(ns string) statusUpdater[*gwv1.TLSRoute] { return client.TLSRoutes(ns) })
	writeStatuses(ctx, KindTCPRoute, in.TCPRoutes, t.Gateway.TCPRoutes, now, warn,
		func(r *gwv1.TCPRoute) *[]gwv1.RouteParentStatus { return &r.Status.Parents }, routeParents,
		func(ns string) statusUpdater[*gwv1.TCPRoute] { return client.TCPRoutes(ns) })
	writeStatuses(ctx, KindUDPRoute, in.UDPRoutes, t.Gateway.UDPRoutes, now, warn,
		func(r *gwv1.UDPRoute) *[]gwv1.RouteParentStatus { return &r.Status.Parents }, routeParents,
		func(ns string) statusUpdater[*gwv1.UDPRoute] { return client.UDPRoutes(ns) })
	writeStatuses(ctx, "BackendTLSPolicy", in.BackendTLSPolicies, t.Gateway.BackendTLSPolicies, now, warn,
		func(p *gwv1.BackendTLSPolicy) *[]gwv1.PolicyAncestorStatus { return &p.Status.Ancestors }, policyAncestors,
		func(ns string) statusUpdater[*gwv1.BackendTLSPolicy] { return client.BackendTLSPolicies(ns) })
	writeStatuses(ctx, "XBackendTrafficPolicy", in.BackendTrafficPolicies, t.Gateway.BackendTrafficPolicies, now, warn,
		func(p *gwxv1a1.XBackendTrafficPolicy) *[]gwv1.PolicyAncestorStatus { return &p.Status.Ancestors }, policyAncestors,
		func(ns string) statusUpdater[*gwxv1a1.XBackendTrafficPolicy] {
			return c.cfg.GatewayClient.ExperimentalV1alpha1().XBackendTrafficPolicies(ns)
		})
}

// mergeListenerConditions gives the conditions of each listener in want
// the transition times of the same-named listener in have (a Gateway's or
// a ListenerSet's listener statuses).
func mergeListenerConditions[L any](have, want []L, now metav1.Time, entry func(*L) (gwv1.SectionName, *[]metav1.Condition)) {
	for i := range want {
		name, conds := entry(&want[i])
		var old []metav1.Condition
		for j := range have {
			if n, c := entry(&have[j]); n == name {
				old = *c
			}
		}
		*conds = mergeConditions(old, *conds, now)
	}
}

// statusUpdater is the typed client of one kind in one namespace.
type statusUpdater[R any] interface {
	UpdateStatus(context.Context, R, metav1.UpdateOptions) (R, error)
}

// writeStatuses publishes want, the status entries t computed (route
// parents or policy ancestors), on the objects of one kind where merge
// finds that they differ from the objects' own.
func writeStatuses[R interface {
	metav1.Object
	DeepCopy() R
}, E any](ctx context.Context, kind string, objs []R, want map[types.NamespacedName][]E, now metav1.Time,
	warn func(string, types.NamespacedName, error), field func(R) *[]E,
	merge func(have, want []E, now metav1.Time) ([]E, bool), client func(ns string) statusUpdater[R]) {
	for _, o := range objs {
		k := types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
		entries, changed := merge(*field(o), want[k], now)
		if !changed {
			continue
		}
		up := o.DeepCopy()
		*field(up) = entries
		_, err := client(o.GetNamespace()).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn(kind, k, err)
	}
}

// routeParents is a route's status.parents with skiff's entries replaced by
// want (conditions keep their transition times), and whether that differs
// from have.
func routeParents(have, want []gwv1.RouteParentStatus, now metav1.Time) ([]gwv1.RouteParentStatus, bool) {
	return replaceOurs(have, want, now,
		func(p *gwv1.RouteParentStatus) (gwv1.GatewayController, any, *[]metav1.Condition) {
			return p.ControllerName, p.ParentRef, &p.Conditions
		})
}

// replaceOurs returns have with the entries of skiff's controller replaced
// by want, each of want's conditions keeping the transition time of the
// entry for the same reference in have, and whether that differs from have.
// entry gives an entry's controller, reference and conditions.
func replaceOurs[E any](have, want []E, now metav1.Time, entry func(*E) (gwv1.GatewayController, any, *[]metav1.Condition)) ([]E, bool) {
	ctrl := gwv1.GatewayController(GatewayControllerName)
	var out []E
	for i := range have {
		if c, _, _ := entry(&have[i]); c != ctrl {
			out = append(out, have[i])
		}
	}
	for _, w := range want {
		_, ref, conds := entry(&w)
		for i := range have {
			if c, hRef, hConds := entry(&have[i]); c == ctrl && equality.Semantic.DeepEqual(hRef, ref) {
				*conds = mergeConditions(*hConds, *conds, now)
			}
		}
		for i := range *conds {
			if (*conds)[i].LastTransitionTime.IsZero() {
				(*conds)[i].LastTransitionTime = now
			}
		}
		out = append(out, w)
	}
	if len(out) == 0 && len(have) == 0 {
		return nil, false
	}
	return out, !equality.Semantic.DeepEqual(out, have)
}

// SupportedFeatures are the Gateway API features skiff implements, as the
// GatewayClass status lists them (sorted).
func SupportedFeatures(experimental bool) []gwv1.SupportedFeature {
	names := []gwv1.FeatureName{
		"Gateway", "GatewayPort8080", "HTTPRoute", "HTTPRouteParentRefPort",
		"HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode", "HTTPRoute308RedirectStatusCode",
		"HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestPercentageMirror", "HTTPRouteNamedRouteRule",
		"HTTPRouteDestinationPortMatching", "HTTPRouteBackendProtocolWebSocket", "GatewayAddressEmpty", "GatewayStaticAddresses", "HTTPRouteBackendRequestHeaderModification", "HTTPRouteBackendProtocolH2C",
		"HTTPRouteHostRewrite", "HTTPRouteMethodMatching", "HTTPRoutePathRedirect",
		"HTTPRoutePathRewrite", "HTTPRoutePortRedirect", "HTTPRouteQueryParamMatching",
		"HTTPRouteRequestMirror", "HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout",
		"HTTPRouteResponseHeaderModification", "HTTPRouteSchemeRedirect", "ReferenceGrant",
		"GRPCRoute", "GRPCRouteNamedRouteRule", "HTTPRouteCORS", "GatewayHTTPListenerIsolation", "GatewayHTTPSListenerDetectMisdirectedRequests", "TLSRoute", "TLSRouteModeTerminate", "TLSRouteModeMixed", "TCPRoute", "UDPRoute",
		"BackendTLSPolicy", "BackendTLSPolicySANValidation", "ListenerSet",
	}
	if experimental {
		// Fields only the experimental channel's CRDs have.
		names = append(names, "HTTPRouteRetry", "HTTPRouteRetryBackendTimeout", "HTTPRouteRetryConnectionError")
	}
	slices.Sort(names)
	out := make([]gwv1.SupportedFeature, len(names))
	for i, n := range names {
		out[i] = gwv1.SupportedFeature{Name: n}
	}
	return out
}
