package ingress

import (
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// listenerSets are the ListenerSets attached to served Gateways as a build
// sees them: their listeners (which routes attach to by a parentRef of
// kind ListenerSet, never through the Gateway), their parents, and their
// statuses so far.
type listenerSets struct {
	listeners map[types.NamespacedName][]*gwListener
	parent    map[types.NamespacedName]types.NamespacedName
	// attached counts, per Gateway, the ListenerSets it accepted that
	// have a valid listener.
	attached map[types.NamespacedName]int32
	sets     []*gwv1.ListenerSet
	// refused are the statuses of sets their Gateway does not allow.
	refused map[types.NamespacedName]*gwv1.ListenerSetStatus
}

// addListenerSets builds the listeners of the ListenerSets whose parent is
// one of gws, after the Gateways' own (which win a conflict), older sets
// first. A Gateway takes ListenerSets only as its allowedListeners say
// (none by default).
func (b *builder) addListenerSets(gws []*gwv1.Gateway, addrs map[types.NamespacedName]netip.Addr, portProto map[int]Proto, claimed map[string]*gwListener) *listenerSets {
	out := &listenerSets{
		listeners: map[types.NamespacedName][]*gwListener{},
		parent:    map[types.NamespacedName]types.NamespacedName{},
		attached:  map[types.NamespacedName]int32{},
		refused:   map[types.NamespacedName]*gwv1.ListenerSetStatus{},
	}
	byKey := map[types.NamespacedName]*gwv1.Gateway{}
	for _, gw := range gws {
		byKey[objKey(&gw.ObjectMeta)] = gw
	}
	sorted := slices.Clone(b.in.ListenerSets)
	slices.SortFunc(sorted, func(a, c *gwv1.ListenerSet) int { return olderObject(&a.ObjectMeta, &c.ObjectMeta) })
	for _, set := range sorted {
		ref := set.Spec.ParentRef
		if (ref.Group != nil && string(*ref.Group) != gatewayGroup) || (ref.Kind != nil && string(*ref.Kind) != kindGateway) {
			continue
		}
		gwKey := types.NamespacedName{Namespace: set.Namespace, Name: string(ref.Name)}
		if ref.Namespace != nil {
			gwKey.Namespace = string(*ref.Namespace)
		}
		gw := byKey[gwKey]
		if gw == nil {
			continue // not a Gateway of ours
		}
		k := objKey(&set.ObjectMeta)
		if !b.allowsListenerSet(gw, set.Namespace) {
			msg := fmt.Sprintf("Gateway %s does not allow ListenerSets from namespace %s (spec.allowedListeners)", gwKey, set.Namespace)
			out.refused[k] = &gwv1.ListenerSetStatus{Conditions: []metav1.Condition{
				condition(string(gwv1.ListenerSetConditionAccepted), false, string(gwv1.ListenerSetReasonNotAllowed), msg, set.Generation),
				condition(string(gwv1.ListenerSetConditionProgrammed), false, string(gwv1.ListenerSetReasonNotAllowed), msg, set.Generation),
			}}
			continue
		}
		// The set's listeners belong to the set: its namespace for
		// allowedRoutes "Same" and certificate references, its generation.
		owner := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: set.Namespace, Name: set.Name, Generation: set.Generation}}
		var ls []*gwListener
		for i := range set.Spec.Listeners {
			e := &set.Spec.Listeners[i]
			spec := &gwv1.Listener{Name: e.Name, Hostname: e.Hostname, Port: e.Port, Protocol: e.Protocol, TLS: e.TLS, AllowedRoutes: e.AllowedRoutes}
			l := b.gatewayListenerOf(owner, kindListenerSet, addrs[gwKey], spec, portProto, claimed)
			ls = append(ls, l)
		}
		out.listeners[k] = ls
		out.parent[k] = gwKey
		out.sets = append(out.sets, set)
		// Attached: accepted, with at least one valid listener.
		if slices.ContainsFunc(ls, func(l *gwListener) bool { return l.usable }) {
			out.attached[gwKey]++
		}
	}
	return out
}

// allowsListenerSet tells whether gw takes ListenerSets from namespace ns.
func (b *builder) allowsListenerSet(gw *gwv1.Gateway, ns string) bool {
	al := gw.Spec.AllowedListeners
	if al == nil || al.Namespaces == nil || al.Namespaces.From == nil {
		return false
	}
	switch *al.Namespaces.From {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == gw.Namespace
	case gwv1.NamespacesFromSelector:
		if al.Namespaces.Selector == nil {
			return false
		}
		sel, err := metav1.LabelSelectorAsSelector(al.Namespaces.Selector)
		if err != nil {
			return false
		}
		for _, n := range b.in.Namespaces {
			if n.Name == ns {
				return sel.Matches(labels.Set(n.Labels))
			}
		}
	}
	return false
}

// finish writes the sets' statuses into into, now that routes are counted.
// A listener that conflicts with another is not Accepted (the Gateway's
// own and older sets' listeners keep theirs).
func (s *listenerSets) finish(into map[types.NamespacedName]*gwv1.ListenerSetStatus) {
	for k, st := range s.refused {
		into[k] = st
	}
	for _, set := range s.sets {
		k := objKey(&set.ObjectMeta)
		st := &gwv1.ListenerSetStatus{}
		valid := 0
		for _, l := range s.listeners[k] {
			conds := slices.Clone(l.status.Conditions)
			if i := slices.IndexFunc(conds, func(c metav1.Condition) bool {
				return c.Type == string(gwv1.ListenerConditionConflicted) && c.Status == metav1.ConditionTrue
			}); i >= 0 {
				for j := range conds {
					if conds[j].Type == string(gwv1.ListenerConditionAccepted) || conds[j].Type == string(gwv1.ListenerConditionProgrammed) {
						conds[j].Status, conds[j].Reason, conds[j].Message = metav1.ConditionFalse, conds[i].Reason, conds[i].Message
					}
				}
			}
			if l.usable && !slices.ContainsFunc(conds, func(c metav1.Condition) bool {
				return c.Type == string(gwv1.ListenerConditionAccepted) && c.Status == metav1.ConditionFalse
			}) {
				valid++
			}
			st.Listeners = append(st.Listeners, gwv1.ListenerEntryStatus{
				Name: l.status.Name, SupportedKinds: l.status.SupportedKinds, AttachedRoutes: l.status.AttachedRoutes, Conditions: conds,
			})
		}
		accepted := condition(string(gwv1.ListenerSetConditionAccepted), true, string(gwv1.ListenerSetReasonAccepted), "ListenerSet accepted by skiff", set.Generation)
		programmed := condition(string(gwv1.ListenerSetConditionProgrammed), true, string(gwv1.ListenerSetReasonProgrammed), "Served by the skiff proxy on every node", set.Generation)
		if n := len(st.Listeners); valid < n {
			msg := fmt.Sprintf("%d of %d listeners are not valid; see status.listeners", n-valid, n)
			if valid == 0 {
				accepted = condition(string(gwv1.ListenerSetConditionAccepted), false, string(gwv1.ListenerSetReasonListenersNotValid), msg, set.Generation)
				programmed = condition(string(gwv1.ListenerSetConditionProgrammed), false, string(gwv1.ListenerSetReasonListenersNotValid), msg, set.Generation)
			} else {
				accepted.Reason, accepted.Message = string(gwv1.ListenerSetReasonListenersNotValid), msg
			}
		}
		st.Conditions = []metav1.Condition{accepted, programmed}
		into[k] = st
	}
}
