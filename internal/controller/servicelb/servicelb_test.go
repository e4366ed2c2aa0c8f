package servicelb

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func node(name string, ready bool, unschedulable bool, addrs ...corev1.NodeAddress) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
			Addresses:  addrs,
		},
	}
}

func internal(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}
func external(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: ip}
}

func TestIngress(t *testing.T) {
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	nodes := []*corev1.Node{
		node("b", true, false, internal("10.0.0.2")),
		node("a", true, false, internal("10.0.0.1"), external("203.0.113.7")),
		node("down", false, false, internal("10.0.0.3")),
		node("cordoned", true, true, internal("10.0.0.4")),
	}
	got := ingress(lb, nodes, nil)
	var ips []string
	for _, in := range got {
		ips = append(ips, in.IP)
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("ingress %s: ipMode %v, want VIP", in.IP, in.IPMode)
		}
	}
	if want := []string{"10.0.0.2", "203.0.113.7"}; !reflect.DeepEqual(ips, want) {
		t.Errorf("ingress IPs = %v, want %v (ready, schedulable nodes; external address preferred; sorted)", ips, want)
	}
	if ingress(lb, nil, nil) != nil {
		t.Error("no nodes: want no ingress")
	}
}

func TestIngressLocalPolicy(t *testing.T) {
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
	}}
	nodes := []*corev1.Node{
		node("a", true, false, internal("10.0.0.1")),
		node("b", true, false, internal("10.0.0.2")),
		node("c", true, false, internal("10.0.0.3")),
		node("d", false, false, internal("10.0.0.4")),
	}
	ep := func(node string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{"10.244.0.9"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	yes, no := true, false
	slices := []*discoveryv1.EndpointSlice{
		{Endpoints: []discoveryv1.Endpoint{ep("a", &yes), ep("c", &no)}},
		{Endpoints: []discoveryv1.Endpoint{ep("b", nil), ep("d", &yes)}}, // nil: ready, as the API says
	}
	var ips []string
	for _, in := range ingress(lb, nodes, slices) {
		ips = append(ips, in.IP)
	}
	// c's endpoint is not ready; d holds one but is not Ready itself.
	if want := []string{"10.0.0.1", "10.0.0.2"}; !reflect.DeepEqual(ips, want) {
		t.Errorf("Local Service ingress IPs = %v, want %v (Ready nodes with a ready local endpoint)", ips, want)
	}
	if got := ingress(lb, nodes, nil); got != nil {
		t.Errorf("Local Service without endpoints: ingress %v, want none", got)
	}
	if len(nodes) != 4 {
		t.Errorf("Ingress changed its node list: %d nodes left", len(nodes))
	}
}

// ingress is Assign's answer for svc alone, with slices as its EndpointSlices.
func ingress(svc *corev1.Service, nodes []*corev1.Node, slices []*discoveryv1.EndpointSlice) []corev1.LoadBalancerIngress {
	return Assign([]*corev1.Service{svc}, nodes, func(*corev1.Service) []*discoveryv1.EndpointSlice { return slices })[types.NamespacedName{Name: svc.Name}]
}

// TestAssignPorts: a port on a node belongs to the oldest Service asking for
// it; a younger one is pending there and gets the node when the older one
// leaves it (here: a Local Service without an endpoint there).
func TestAssignPorts(t *testing.T) {
	at := func(sec int64) metav1.Time { return metav1.Unix(1_700_000_000+sec, 0) }
	lb := func(name string, created metav1.Time, local bool, ports ...corev1.ServicePort) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: created},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: ports}}
		if local {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		return s
	}
	tcp := func(p int32) corev1.ServicePort { return corev1.ServicePort{Port: p, Protocol: corev1.ProtocolTCP} }
	udp80 := corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolUDP}
	nodes := []*corev1.Node{node("a", true, false, internal("10.0.0.1")), node("b", true, false, internal("10.0.0.2"))}
	onA := "a"
	services := []*corev1.Service{
		lb("web-later", at(30), false, tcp(80)),
		lb("ingress", at(10), true, tcp(80), tcp(443)), // endpoint on a only
		lb("dns", at(40), false, udp80),                // another protocol: no clash
		lb("tls", at(20), false, tcp(443)),
		lb("same-time-b", at(50), false, tcp(8080)),
		lb("same-time-a", at(50), false, tcp(8080)), // same second: by name
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cluster-ip"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{tcp(80)}}},
	}
	slicesOf := func(s *corev1.Service) []*discoveryv1.EndpointSlice {
		if s.Name == "ingress" {
			return []*discoveryv1.EndpointSlice{{Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &onA}}}}
		}
		return nil
	}
	got := map[string][]string{}
	for k, in := range Assign(services, nodes, slicesOf) {
		got[k.Name] = []string{}
		for _, i := range in {
			got[k.Name] = append(got[k.Name], i.IP)
		}
	}
	want := map[string][]string{
		"ingress":     {"10.0.0.1"},
		"tls":         {"10.0.0.2"},             // 443 on a is the ingress's
		"web-later":   {"10.0.0.2"},             // 80 on a is the ingress's
		"dns":         {"10.0.0.1", "10.0.0.2"}, // UDP 80 is free everywhere
		"same-time-a": {"10.0.0.1", "10.0.0.2"},
		"same-time-b": {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Assign = %v\nwant     %v", got, want)
	}
}

func TestManaged(t *testing.T) {
	class := "example.com/other"
	for _, tc := range []struct {
		svc  corev1.ServiceSpec
		want bool
	}{
		{corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}, true},
		{corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class}, false},
		{corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort}, false},
		{corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}, false},
	} {
		if got := managed(&corev1.Service{Spec: tc.svc}); got != tc.want {
			t.Errorf("managed(%+v) = %v, want %v", tc.svc, got, tc.want)
		}
	}
}
