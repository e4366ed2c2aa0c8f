package ingress

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func listenerSet(namespace, name, gateway string, age int, entries ...gwv1.ListenerEntry) *gwv1.ListenerSet {
	return &gwv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))},
		Spec:       gwv1.ListenerSetSpec{ParentRef: gwv1.ParentGatewayReference{Name: gwv1.ObjectName(gateway), Namespace: ptr.To(gwv1.Namespace("ns"))}, Listeners: entries},
	}
}

func entry(name, host string) gwv1.ListenerEntry {
	return gwv1.ListenerEntry{Name: gwv1.SectionName(name), Protocol: gwv1.HTTPProtocolType, Port: 80, Hostname: ptr.To(gwv1.Hostname(host))}
}

// The Gateway allows sets from its namespace; its own listener, then the
// older set, win a hostname; a route reaches a set's listener only by a
// parentRef to the set; a Gateway that allows none refuses them.
func TestListenerSets(t *testing.T) {
	allowing := makeGateway("ns", "gw").listener("own", gwv1.HTTPProtocolType, 80, "own.example.com").obj()
	allowing.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: ptr.To(gwv1.NamespacesFromSame)}}
	closed := makeGateway("ns", "closed").listener("own", gwv1.HTTPProtocolType, 80, "closed.example.com").obj()
	route := makeRoute("ns", "r").rule(prefixMatch("/"), []string{"svc-a"}).obj()
	route.Spec.ParentRefs = []gwv1.ParentReference{{Kind: ptr.To(gwv1.Kind("ListenerSet")), Name: "older", SectionName: ptr.To(gwv1.SectionName("shop"))}}
	viaGateway := makeRoute("ns", "via-gw").parent("ns", "gw", "shop").rule(prefixMatch("/"), []string{"svc-b"}).obj()
	in := gatewayState([]*gwv1.Gateway{allowing, closed}, []*gwv1.HTTPRoute{route, viaGateway})
	in.ListenerSets = []*gwv1.ListenerSet{
		listenerSet("ns", "older", "gw", 1, entry("shop", "shop.example.com"), entry("clash", "own.example.com")),
		listenerSet("ns", "newer", "gw", 2, entry("shop-too", "shop.example.com")),
		listenerSet("ns", "refused", "closed", 1, entry("x", "x.example.com")),
	}
	tb := Build(in)
	sets := tb.Gateway.ListenerSets
	older := sets[types.NamespacedName{Namespace: "ns", Name: "older"}]
	if older == nil || len(older.Listeners) != 2 {
		t.Fatalf("older: %+v", older)
	}
	wantCondition(t, "older", older.Conditions, "Accepted", metav1.ConditionTrue, "ListenersNotValid")
	wantCondition(t, "older shop", older.Listeners[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	if older.Listeners[0].AttachedRoutes != 1 {
		t.Errorf("older shop attached routes %d, want 1", older.Listeners[0].AttachedRoutes)
	}
	wantCondition(t, "older clash", older.Listeners[1].Conditions, "Accepted", metav1.ConditionFalse, "HostnameConflict")
	wantCondition(t, "older clash", older.Listeners[1].Conditions, "Conflicted", metav1.ConditionTrue, "HostnameConflict")
	newer := sets[types.NamespacedName{Namespace: "ns", Name: "newer"}]
	wantCondition(t, "newer", newer.Conditions, "Accepted", metav1.ConditionFalse, "ListenersNotValid")
	refused := sets[types.NamespacedName{Namespace: "ns", Name: "refused"}]
	wantCondition(t, "refused", refused.Conditions, "Accepted", metav1.ConditionFalse, "NotAllowed")
	if n := ptr.Deref(tb.Gateway.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}].AttachedListenerSets, -1); n != 1 {
		t.Errorf("gw attachedListenerSets = %d, want 1 (older; newer has no valid listener)", n)
	}
	parents := tb.Gateway.Routes[types.NamespacedName{Namespace: "ns", Name: "via-gw"}]
	if len(parents) != 1 {
		t.Fatalf("via-gw parents: %+v", parents)
	}
	wantCondition(t, "via-gw", parents[0].Conditions, "Accepted", metav1.ConditionFalse, "NoMatchingParent")
}
