package mesh

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// World is what the proxy reads of the cluster: the informers' stores
// behind small lookups, so that routing is tested from tables.
type World interface {
	// PodByIP is the running pod with this address (nil when none).
	PodByIP(netip.Addr) *corev1.Pod
	// Namespace is the named namespace (nil when unknown).
	Namespace(name string) *corev1.Namespace
	// ServiceByIP is the Service with this cluster IP (nil when none).
	ServiceByIP(netip.Addr) *corev1.Service
	// EndpointSlices are the slices of Service ns/name.
	EndpointSlices(ns, name string) []*discoveryv1.EndpointSlice
}

// Destination is where a captured connection goes.
type Destination struct {
	// Addr is the endpoint: a pod's address and port, or the original
	// destination when it is neither a Service nor a known pod.
	Addr netip.AddrPort
	// Pod is the endpoint's pod, when it is one.
	Pod *corev1.Pod
	// Service is the Service the client addressed, when it did.
	Service *corev1.Service
	// Mesh is set when Pod is enrolled: the connection is tunnelled to
	// Pod's node with mutual TLS.
	Mesh bool
}

// Route decides where a connection to dst goes: a Service's cluster IP is
// balanced over its ready endpoints (pick chooses one of n), an enrolled
// pod is reached through the mesh, anything else directly.
func Route(w World, dst netip.AddrPort, pick func(n int) int) (Destination, error) {
	d := Destination{Addr: dst}
	if svc := w.ServiceByIP(dst.Addr()); svc != nil {
		d.Service = svc
		ep, err := endpointOf(w, svc, dst.Port(), pick)
		if err != nil {
			return d, err
		}
		d.Addr = ep
	}
	if pod := w.PodByIP(d.Addr.Addr()); pod != nil {
		d.Pod = pod
		d.Mesh = Enrolled(pod, w.Namespace(pod.Namespace))
	}
	return d, nil
}

// endpointOf picks a ready, not terminating endpoint of svc's port port.
func endpointOf(w World, svc *corev1.Service, port uint16, pick func(int) int) (netip.AddrPort, error) {
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if p := &svc.Spec.Ports[i]; p.Port == int32(port) && (p.Protocol == corev1.ProtocolTCP || p.Protocol == "") {
			sp = p
			break
		}
	}
	if sp == nil {
		return netip.AddrPort{}, fmt.Errorf("service %s/%s has no TCP port %d", svc.Namespace, svc.Name, port)
	}
	var eps []netip.AddrPort
	for _, s := range w.EndpointSlices(svc.Namespace, svc.Name) {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		target := int32(-1)
		for _, p := range s.Ports {
			if p.Port != nil && ptrOr(p.Name, "") == sp.Name && (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) {
				target = *p.Port
			}
		}
		if target < 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if !ptrOr(e.Conditions.Ready, true) || ptrOr(e.Conditions.Terminating, false) {
				continue
			}
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					eps = append(eps, netip.AddrPortFrom(ip, uint16(target)))
				}
			}
		}
	}
	if len(eps) == 0 {
		return netip.AddrPort{}, fmt.Errorf("service %s/%s has no ready endpoints for port %d", svc.Namespace, svc.Name, port)
	}
	return eps[pick(len(eps))], nil
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// informerWorld is World over shared informers.
type informerWorld struct {
	pods       cache.Indexer
	services   cache.Indexer
	namespaces corelisters.NamespaceLister
	slices     discoverylisters.EndpointSliceLister
}

const byIP = "ip"

// newInformerWorld registers the informers and indexes World reads on f.
func newInformerWorld(f informers.SharedInformerFactory) (*informerWorld, []cache.SharedIndexInformer, error) {
	pods := f.Core().V1().Pods().Informer()
	services := f.Core().V1().Services().Informer()
	namespaces := f.Core().V1().Namespaces()
	slices := f.Discovery().V1().EndpointSlices()
	if err := pods.AddIndexers(cache.Indexers{byIP: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.HostNetwork || p.Status.PodIP == "" {
			return nil, nil
		}
		return []string{p.Status.PodIP}, nil
	}}); err != nil {
		return nil, nil, err
	}
	if err := services.AddIndexers(cache.Indexers{byIP: func(obj any) ([]string, error) {
		s, ok := obj.(*corev1.Service)
		if !ok {
			return nil, nil
		}
		var ips []string
		for _, ip := range s.Spec.ClusterIPs {
			if ip != "" && ip != corev1.ClusterIPNone {
				ips = append(ips, ip)
			}
		}
		return ips, nil
	}}); err != nil {
		return nil, nil, err
	}
	w := &informerWorld{pods: pods.GetIndexer(), services: services.GetIndexer(), namespaces: namespaces.Lister(), slices: slices.Lister()}
	return w, []cache.SharedIndexInformer{pods, services, namespaces.Informer(), slices.Informer()}, nil
}

func (w *informerWorld) PodByIP(ip netip.Addr) *corev1.Pod {
	objs, _ := w.pods.ByIndex(byIP, ip.String())
	var found *corev1.Pod
	for _, o := range objs {
		p := o.(*corev1.Pod)
		// An address is reused only after its pod finished.
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			found = p
		}
	}
	return found
}

func (w *informerWorld) Namespace(name string) *corev1.Namespace {
	ns, _ := w.namespaces.Get(name)
	return ns
}

func (w *informerWorld) ServiceByIP(ip netip.Addr) *corev1.Service {
	objs, _ := w.services.ByIndex(byIP, ip.String())
	if len(objs) == 0 {
		return nil
	}
	return objs[0].(*corev1.Service)
}

func (w *informerWorld) EndpointSlices(ns, name string) []*discoveryv1.EndpointSlice {
	s, _ := w.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	return s
}

// pods lists every pod the informer holds.
func (w *informerWorld) allPods() []*corev1.Pod {
	objs := w.pods.List()
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}
