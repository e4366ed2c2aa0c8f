package podnet

import (
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, ip string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

func TestDesiredRoutes(t *testing.T) {
	got := desiredRoutes("a", []*corev1.Node{
		node("a", "172.31.0.1", "10.42.0.0/24"),              // self: no route
		node("b", "172.31.0.2", "10.42.1.0/24"),              // routed via its InternalIP
		node("c", "172.31.0.3"),                              // no podCIDR yet
		node("d", "", "10.42.3.0/24"),                        // no address yet
		node("e", "172.31.0.5", "10.42.4.0/24", "fd00::/64"), // IPv6 CIDRs are skipped
	})
	want := map[string]net.IP{"10.42.1.0/24": net.ParseIP("172.31.0.2"), "10.42.4.0/24": net.ParseIP("172.31.0.5")}
	if len(got) != len(want) {
		t.Fatalf("routes = %v, want %v", got, want)
	}
	for cidr, gw := range want {
		if !got[cidr].Equal(gw) {
			t.Errorf("route %s via %v, want %v", cidr, got[cidr], gw)
		}
	}
}

func TestCNITemplate(t *testing.T) {
	for _, tc := range []struct {
		backend string
		mtu     bool
	}{{BackendHostGW, false}, {BackendVXLAN, true}} {
		tmpl := CNITemplate(tc.backend, "/data/cni/ipam")
		for _, want := range []string{`"bridge": "skiff0"`, `"dataDir": "/data/cni/ipam"`, `{{range $i, $r := .PodCIDRRanges}}`, `"type": "portmap"`, `"ipMasq": false`} {
			if !strings.Contains(tmpl, want) {
				t.Errorf("%s: CNI template lacks %q", tc.backend, want)
			}
		}
		if got := strings.Contains(tmpl, `"mtu": 1450,`); got != tc.mtu {
			t.Errorf("%s: MTU 1450 in the template = %v, want %v", tc.backend, got, tc.mtu)
		}
	}
}
