package dns

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Test builders, in the scheduler's MakePod().….Obj() style.

type serviceBuilder struct{ s corev1.Service }

func makeService(namespace, name string) *serviceBuilder {
	return &serviceBuilder{corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}}
}

func (b *serviceBuilder) clusterIP(ips ...string) *serviceBuilder {
	b.s.Spec.ClusterIP, b.s.Spec.ClusterIPs = ips[0], ips
	return b
}

func (b *serviceBuilder) headless() *serviceBuilder { return b.clusterIP(corev1.ClusterIPNone) }

func (b *serviceBuilder) externalName(name string) *serviceBuilder {
	b.s.Spec.Type, b.s.Spec.ExternalName = corev1.ServiceTypeExternalName, name
	return b
}

func (b *serviceBuilder) port(name string, proto corev1.Protocol, port int32) *serviceBuilder {
	b.s.Spec.Ports = append(b.s.Spec.Ports, corev1.ServicePort{Name: name, Protocol: proto, Port: port})
	return b
}

func (b *serviceBuilder) obj() *corev1.Service { return &b.s }

type sliceBuilder struct{ s discoveryv1.EndpointSlice }

func makeSlice(namespace, service, suffix string) *sliceBuilder {
	return &sliceBuilder{discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: service + "-" + suffix,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}}
}

func (b *sliceBuilder) ipv6() *sliceBuilder {
	b.s.AddressType = discoveryv1.AddressTypeIPv6
	return b
}

// ready adds a ready endpoint; hostname may be empty.
func (b *sliceBuilder) ready(ip, hostname string) *sliceBuilder {
	ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	if hostname != "" {
		ep.Hostname = ptr.To(hostname)
	}
	b.s.Endpoints = append(b.s.Endpoints, ep)
	return b
}

func (b *sliceBuilder) notReady(ip string) *sliceBuilder {
	b.s.Endpoints = append(b.s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
	return b
}

// unknown adds an endpoint whose readiness is not reported, which counts as
// ready.
func (b *sliceBuilder) unknown(ip string) *sliceBuilder {
	b.s.Endpoints = append(b.s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}})
	return b
}

func (b *sliceBuilder) port(name string, proto corev1.Protocol, port int32) *sliceBuilder {
	b.s.Ports = append(b.s.Ports, discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(port)})
	return b
}

func (b *sliceBuilder) obj() *discoveryv1.EndpointSlice { return &b.s }

// rrStrings renders records as "name ttl class type data", one space apart.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprint(rc)
}
