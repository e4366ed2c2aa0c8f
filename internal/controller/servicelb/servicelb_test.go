package servicelb

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	nodes := []*corev1.Node{
		node("b", true, false, internal("10.0.0.2")),
		node("a", true, false, internal("10.0.0.1"), external("203.0.113.7")),
		node("down", false, false, internal("10.0.0.3")),
		node("cordoned", true, true, internal("10.0.0.4")),
	}
	got := Ingress(lb, nodes)
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
	if Ingress(lb, nil) != nil {
		t.Error("no nodes: want no ingress")
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
