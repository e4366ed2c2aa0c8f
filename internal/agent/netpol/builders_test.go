package netpol

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for test objects: makePod("ns", "web-0").node("n1").ip(...).obj().

type podBuilder struct{ p corev1.Pod }

func makePod(ns, name string) *podBuilder {
	return &podBuilder{corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}}
}

func (b *podBuilder) node(n string) *podBuilder { b.p.Spec.NodeName = n; return b }
func (b *podBuilder) ip(ip string) *podBuilder {
	b.p.Status.PodIP = ip
	b.p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	return b
}
func (b *podBuilder) label(k, v string) *podBuilder { b.p.Labels[k] = v; return b }
func (b *podBuilder) hostNetwork() *podBuilder      { b.p.Spec.HostNetwork = true; return b }
func (b *podBuilder) phase(p corev1.PodPhase) *podBuilder {
	b.p.Status.Phase = p
	return b
}

// port adds a container port; protocol "" is TCP.
func (b *podBuilder) port(name string, n int32, proto corev1.Protocol) *podBuilder {
	if len(b.p.Spec.Containers) == 0 {
		b.p.Spec.Containers = []corev1.Container{{Name: "c"}}
	}
	b.p.Spec.Containers[0].Ports = append(b.p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: proto})
	return b
}
func (b *podBuilder) obj() *corev1.Pod { p := b.p; return &p }

func makeNamespace(name string, kv ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
	for i := 0; i+1 < len(kv); i += 2 {
		ns.Labels[kv[i]] = kv[i+1]
	}
	return ns
}

type policyBuilder struct{ p networkingv1.NetworkPolicy }

func makePolicy(ns, name string) *policyBuilder {
	return &policyBuilder{networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
}

// selector sets spec.podSelector from "k=v" pairs ("" selects every pod).
func (b *policyBuilder) selector(kv ...string) *policyBuilder {
	b.p.Spec.PodSelector = sel(kv...)
	return b
}

func (b *policyBuilder) types(ts ...networkingv1.PolicyType) *policyBuilder {
	b.p.Spec.PolicyTypes = ts
	return b
}

func (b *policyBuilder) ingress(from []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) *policyBuilder {
	b.p.Spec.Ingress = append(b.p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: from, Ports: ports})
	return b
}

func (b *policyBuilder) egress(to []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) *policyBuilder {
	b.p.Spec.Egress = append(b.p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: to, Ports: ports})
	return b
}

func (b *policyBuilder) obj() *networkingv1.NetworkPolicy { p := b.p; return &p }

func sel(kv ...string) metav1.LabelSelector {
	s := metav1.LabelSelector{}
	for _, pair := range kv {
		k, v, _ := strings.Cut(pair, "=")
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[k] = v
	}
	return s
}

func selPtr(kv ...string) *metav1.LabelSelector { s := sel(kv...); return &s }

func podPeer(kv ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: selPtr(kv...)}
}

func nsPeer(kv ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: selPtr(kv...)}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func peers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

func tcp(port int) networkingv1.NetworkPolicyPort { return numPort(corev1.ProtocolTCP, port) }
func udp(port int) networkingv1.NetworkPolicyPort { return numPort(corev1.ProtocolUDP, port) }

func numPort(proto corev1.Protocol, port int) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(int32(port))
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func portRangePort(proto corev1.Protocol, from, to int32) networkingv1.NetworkPolicyPort {
	p := numPort(proto, int(from))
	p.EndPort = &to
	return p
}

func protoOnly(proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &proto}
}

// namedPort is a port by name; without a protocol it is TCP.
func namedPort(name string, proto ...corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	np := networkingv1.NetworkPolicyPort{Port: &p}
	if len(proto) > 0 {
		np.Protocol = &proto[0]
	}
	return np
}
