package ingress

import (
	"cmp"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
)

// backendPolicies are the XBackendTrafficPolicies (the Gateway API's
// experimental channel) as a build applies them: a policy's
// sessionPersistence pins clients to pods of the Services it targets, for
// every Gateway route to them whose rule sets none of its own. Of two
// policies targeting one Service the older wins (the Gateway API's
// conflict rule); the other is Conflicted.
type backendPolicies struct {
	byService  map[types.NamespacedName]*gwxv1a1.XBackendTrafficPolicy
	conflicted map[types.NamespacedName]bool // policies that lost a target
	// used lists, per Gateway, the Services its accepted routes send to.
	used map[types.NamespacedName]map[types.NamespacedName]bool
}

func newBackendPolicies(policies []*gwxv1a1.XBackendTrafficPolicy) *backendPolicies {
	bp := &backendPolicies{
		byService:  map[types.NamespacedName]*gwxv1a1.XBackendTrafficPolicy{},
		conflicted: map[types.NamespacedName]bool{},
		used:       map[types.NamespacedName]map[types.NamespacedName]bool{},
	}
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, c *gwxv1a1.XBackendTrafficPolicy) int { return olderObject(&a.ObjectMeta, &c.ObjectMeta) })
	for _, p := range sorted {
		for _, svc := range policyServices(p) {
			if _, taken := bp.byService[svc]; taken {
				bp.conflicted[objKey(&p.ObjectMeta)] = true
				continue
			}
			bp.byService[svc] = p
		}
	}
	return bp
}

// policyServices are the Services p targets (other kinds are ignored).
func policyServices(p *gwxv1a1.XBackendTrafficPolicy) []types.NamespacedName {
	var out []types.NamespacedName
	for _, ref := range p.Spec.TargetRefs {
		if ref.Group == "" && ref.Kind == "Service" {
			out = append(out, types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)})
		}
	}
	return out
}

// affinityCookie is the cookie name the policy of Service ns/name asks
// for, "" when none asks for cookie-based persistence.
func (bp *backendPolicies) affinityCookie(ns, name string) string {
	p := bp.byService[types.NamespacedName{Namespace: ns, Name: name}]
	if p == nil || p.Spec.SessionPersistence == nil {
		return ""
	}
	sp := p.Spec.SessionPersistence
	if sp.Type != nil && *sp.Type != gwv1.CookieBasedSessionPersistence {
		return ""
	}
	return cmp.Or(ptrValue(sp.SessionName), DefaultAffinityCookie)
}

// use records that an accepted route of Gateway gw sends to the backends
// of action.
func (bp *backendPolicies) use(gw types.NamespacedName, action []*RuleAction) {
	usedBy(bp.used, gw, action)
}

// usedBy records, in used, that an accepted route of Gateway gw sends to
// the Services of action's backends.
func usedBy(used map[types.NamespacedName]map[types.NamespacedName]bool, gw types.NamespacedName, action []*RuleAction) {
	for _, a := range action {
		for _, wb := range a.Backends {
			if wb.Backend == nil {
				continue
			}
			if used[gw] == nil {
				used[gw] = map[types.NamespacedName]bool{}
			}
			used[gw][types.NamespacedName{Namespace: wb.Backend.Namespace, Name: wb.Backend.Service}] = true
		}
	}
}

// ancestorsOf are a policy's status.ancestors entries: one per Gateway
// (in name order, at most maxPolicyAncestors) whose routes send to one of
// targets, each with conds.
func ancestorsOf(used map[types.NamespacedName]map[types.NamespacedName]bool, targets []types.NamespacedName, ctrl string, conds ...metav1.Condition) []gwv1.PolicyAncestorStatus {
	gws := make([]types.NamespacedName, 0, len(used))
	for gw := range used {
		gws = append(gws, gw)
	}
	slices.SortFunc(gws, func(a, c types.NamespacedName) int { return cmp.Compare(a.String(), c.String()) })
	var ancestors []gwv1.PolicyAncestorStatus
	for _, gw := range gws {
		if len(ancestors) == maxPolicyAncestors {
			break
		}
		if !slices.ContainsFunc(targets, func(s types.NamespacedName) bool { return used[gw][s] }) {
			continue
		}
		ancestors = append(ancestors, gwv1.PolicyAncestorStatus{
			AncestorRef: gwv1.ParentReference{
				Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: ptrTo(gwv1.Kind(kindGateway)),
				Namespace: ptrTo(gwv1.Namespace(gw.Namespace)), Name: gwv1.ObjectName(gw.Name),
			},
			ControllerName: gwv1.GatewayController(ctrl),
			Conditions:     slices.Clone(conds),
		})
	}
	return ancestors
}

// maxPolicyAncestors is the most status.ancestors entries the CRD allows.
const maxPolicyAncestors = 16

// statuses are the ancestor entries skiff publishes for each policy: one
// per Gateway whose routes send to a Service the policy targets, Accepted,
// or Conflicted when an older policy holds one of its Services.
func (bp *backendPolicies) statuses(policies []*gwxv1a1.XBackendTrafficPolicy, ctrl string) map[types.NamespacedName][]gwv1.PolicyAncestorStatus {
	out := map[types.NamespacedName][]gwv1.PolicyAncestorStatus{}
	for _, p := range policies {
		k := objKey(&p.ObjectMeta)
		cond := condition(string(gwv1.PolicyConditionAccepted), true, string(gwv1.PolicyReasonAccepted), "Policy applied to the Services it targets", p.Generation)
		if bp.conflicted[k] {
			cond = condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.PolicyReasonConflicted),
				"an older XBackendTrafficPolicy targets the same Service; it applies there", p.Generation)
		}
		out[k] = ancestorsOf(bp.used, policyServices(p), ctrl, cond)
	}
	return out
}

// policyAncestors is a policy's status.ancestors with skiff's entries
// replaced by want (conditions keep their transition times), and whether
// that differs from have.
func policyAncestors(have, want []gwv1.PolicyAncestorStatus, now metav1.Time) ([]gwv1.PolicyAncestorStatus, bool) {
	return replaceOurs(have, want, now,
		func(a *gwv1.PolicyAncestorStatus) (gwv1.GatewayController, any, *[]metav1.Condition) {
			return a.ControllerName, a.AncestorRef, &a.Conditions
		})
}
