// Package ingresslb publishes the nodes' ingress proxies (internal/ingress)
// as one Service, kube-system/skiff-ingress, of type LoadBalancer: the
// service load balancer (internal/controller/servicelb) gives it the
// addresses of the nodes that run a proxy as EXTERNAL-IPs, as k3s's Traefik
// Service gets them.
//
// The proxies run on the nodes' host network, not in pods, so the Service
// has no selector: this controller writes its EndpointSlices, one endpoint
// per Ready node whose agent announces a proxy (the node annotation
// NodePortsAnnotation, "HTTP,HTTPS" ports). The Service's
// externalTrafficPolicy is Local: a connection to a node's address on the
// Service's port stays on that node's proxy with its source address intact
// (X-Forwarded-For and client-IP affinity see the real client).
//
// The Service is created once; an administrator may change it (annotations,
// loadBalancerSourceRanges, another policy) and skiff keeps only its ports,
// the ports most proxies serve, and its EndpointSlices.
package ingresslb

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/internal/changes"
)

// The Service and what marks its EndpointSlices as this controller's.
const (
	ServiceName = "skiff-ingress"
	Namespace   = metav1.NamespaceSystem
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
	// slices this controller writes.
	ManagedBy = "ingress-lb.skiff.dev"
	// NodePortsAnnotation is set by a node agent that runs the proxy: the
	// ports it serves HTTP and HTTPS on, "80,443" (FormatPorts).
	NodePortsAnnotation = "skiff.dev/ingress-ports"
)

// Controller keeps the Service and its EndpointSlices equal to the nodes'
// proxies.
type Controller struct {
	client  kubernetes.Interface
	log     *slog.Logger
	metrics *metrics
}

// New returns a controller writing through client, counting its syncs in
// reg (skiff_controller_syncs_total and _sync_duration_seconds,
// controller="ingress-lb"; nil: not counted anywhere).
func New(client kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer) (*Controller, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ingress-lb metrics: %w", err)
	}
	return &Controller{client: client, log: log, metrics: m}, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	nodeFactory := informers.NewSharedInformerFactory(c.client, 10*time.Minute)
	ownFactory := informers.NewSharedInformerFactoryWithOptions(c.client, 10*time.Minute,
		informers.WithNamespace(Namespace))
	nodes := nodeFactory.Core().V1().Nodes()
	services := ownFactory.Core().V1().Services()
	slicesInf := ownFactory.Discovery().V1().EndpointSlices()
	changed := changes.New()
	if err := changed.Watch(nodes.Informer(), services.Informer(), slicesInf.Informer()); err != nil {
		return err
	}
	nodeFactory.Start(ctx.Done())
	ownFactory.Start(ctx.Done())
	defer nodeFactory.Shutdown()
	defer ownFactory.Shutdown()
	nodeFactory.WaitForCacheSync(ctx.Done())
	ownFactory.WaitForCacheSync(ctx.Done())

	changed.Notify()
	delay := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed.C():
		}
		began := time.Now()
		nodeList, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			var svc *corev1.Service
			var have []*discoveryv1.EndpointSlice
			svc, err = services.Lister().Services(Namespace).Get(ServiceName)
			if apierrors.IsNotFound(err) {
				svc, err = nil, nil
			}
			if err == nil {
				have, err = slicesInf.Lister().EndpointSlices(Namespace).List(labels.SelectorFromSet(labels.Set{
					discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: ManagedBy,
				}))
			}
			if err == nil {
				err = c.sync(ctx, nodeList, svc, have)
			}
		}
		c.metrics.observe(began, err)
		if err == nil {
			delay = 0
			continue
		}
		delay = min(max(2*delay, 200*time.Millisecond), 30*time.Second)
		c.log.Warn("ingress service: sync failed; retrying", "err", err, "after", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
			changed.Notify()
		}
	}
}

// sync writes what differs between the wanted Service and slices and what
// the caches hold (svc nil: none yet).
func (c *Controller) sync(ctx context.Context, nodes []*corev1.Node, svc *corev1.Service, have []*discoveryv1.EndpointSlice) error {
	proxies := Proxies(nodes)
	services := c.client.CoreV1().Services(Namespace)
	var ports []corev1.ServicePort
	if svc != nil {
		ports = servicePorts(svc.Spec.Ports, proxies)
	}
	if svc == nil {
		// The cache may not hold the Service this controller has just
		// created: creating it again would be refused, but only after the
		// API server allocated (and released) a second cluster IP, which
		// its repair loop reports as IPAddressWrongReference.
		if got, err := services.Get(ctx, ServiceName, metav1.GetOptions{}); err == nil {
			svc = got
			ports = servicePorts(svc.Spec.Ports, proxies)
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get Service %s/%s: %w", Namespace, ServiceName, err)
		}
	}
	switch {
	case svc == nil:
		created, err := services.Create(ctx, Service(proxies), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // the cache will hand it over
		}
		if err != nil {
			return fmt.Errorf("create Service %s/%s: %w", Namespace, ServiceName, err)
		}
		svc = created
		c.log.Info("created the ingress Service", "service", Namespace+"/"+ServiceName)
	case !equality.Semantic.DeepEqual(svc.Spec.Ports, ports):
		up := svc.DeepCopy()
		up.Spec.Ports = ports
		if _, err := services.Update(ctx, up, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Service %s/%s ports: %w", Namespace, ServiceName, err)
		}
	}
	return c.syncSlices(ctx, Slices(svc, proxies), have)
}

func (c *Controller) syncSlices(ctx context.Context, want, have []*discoveryv1.EndpointSlice) error {
	api := c.client.DiscoveryV1().EndpointSlices(Namespace)
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range have {
		byName[s.Name] = s
	}
	for _, w := range want {
		old := byName[w.Name]
		delete(byName, w.Name)
		var err error
		switch {
		case old == nil:
			_, err = api.Create(ctx, w, metav1.CreateOptions{})
		case !sameSlice(old, w):
			up := old.DeepCopy()
			up.Labels, up.OwnerReferences = w.Labels, w.OwnerReferences
			up.AddressType, up.Endpoints, up.Ports = w.AddressType, w.Endpoints, w.Ports
			_, err = api.Update(ctx, up, metav1.UpdateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("write EndpointSlice %s/%s: %w", Namespace, w.Name, err)
		}
	}
	for name := range byName {
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete EndpointSlice %s/%s: %w", Namespace, name, err)
		}
	}
	return nil
}

func sameSlice(a, b *discoveryv1.EndpointSlice) bool {
	return a.AddressType == b.AddressType &&
		equality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences) &&
		equality.Semantic.DeepEqual(a.Endpoints, b.Endpoints) &&
		equality.Semantic.DeepEqual(a.Ports, b.Ports)
}

// Proxy is one node's ingress proxy.
type Proxy struct {
	Node        string
	Addr        netip.Addr // the node's first IPv4 InternalIP
	HTTP, HTTPS int32
	Ready       bool // the node is Ready and schedulable
}

// Proxies lists the nodes that announce a proxy and have an IPv4
// InternalIP, by node name. A malformed announcement counts as none.
func Proxies(nodes []*corev1.Node) []Proxy {
	var out []Proxy
	for _, n := range nodes {
		http, https, ok := ParsePorts(n.Annotations[NodePortsAnnotation])
		if !ok {
			continue
		}
		var addr netip.Addr
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); a.Type == corev1.NodeInternalIP && err == nil && ip.Is4() {
				addr = ip
				break
			}
		}
		if !addr.IsValid() {
			continue
		}
		out = append(out, Proxy{Node: n.Name, Addr: addr, HTTP: http, HTTPS: https, Ready: nodeReady(n) && !n.Spec.Unschedulable})
	}
	slices.SortFunc(out, func(a, b Proxy) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// FormatPorts is the annotation's value for a proxy serving HTTP and HTTPS
// on these ports.
func FormatPorts(http, https int) string {
	return strconv.Itoa(http) + "," + strconv.Itoa(https)
}

// ParsePorts reads the annotation's value, "HTTP,HTTPS".
func ParsePorts(v string) (http, https int32, ok bool) {
	a, b, found := strings.Cut(v, ",")
	if !found {
		return 0, 0, false
	}
	h, err1 := strconv.ParseUint(a, 10, 16)
	s, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || h == 0 || s == 0 {
		return 0, 0, false
	}
	return int32(h), int32(s), true
}

// Service is the Service as first created.
func Service(proxies []Proxy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName, Namespace: Namespace,
			Labels: map[string]string{"app.kubernetes.io/name": ServiceName, "app.kubernetes.io/managed-by": "skiff"},
		},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy:         corev1.ServiceExternalTrafficPolicyLocal,
			AllocateLoadBalancerNodePorts: ptr.To(false),
			Ports:                         servicePorts(nil, proxies),
		},
	}
}

// servicePorts returns the ports the Service should have: named http and
// https, on the port numbers most proxies serve (80 and 443 when none
// does), so that the Service claims on each node's address only the ports
// its proxy serves anyway. Fields the API server defaulted or an
// administrator set on old ports of the same name are kept.
func servicePorts(old []corev1.ServicePort, proxies []Proxy) []corev1.ServicePort {
	http, https := mostCommon(proxies, func(p Proxy) int32 { return p.HTTP }, 80),
		mostCommon(proxies, func(p Proxy) int32 { return p.HTTPS }, 443)
	want := []corev1.ServicePort{
		{Name: "http", Protocol: corev1.ProtocolTCP, Port: http},
		{Name: "https", Protocol: corev1.ProtocolTCP, Port: https},
	}
	for i := range want {
		want[i].TargetPort = intstr.FromInt32(want[i].Port) // unused without a selector; what the API server defaults
		if j := slices.IndexFunc(old, func(o corev1.ServicePort) bool { return o.Name == want[i].Name }); j >= 0 {
			p := old[j]
			p.Port, p.Protocol, p.TargetPort = want[i].Port, want[i].Protocol, want[i].TargetPort
			want[i] = p
		}
	}
	return want
}

// mostCommon is the value of f most proxies share, the lowest on a tie, def
// for none.
func mostCommon(proxies []Proxy, f func(Proxy) int32, def int32) int32 {
	count := map[int32]int{}
	best, bestN := def, 0
	for _, p := range proxies {
		v := f(p)
		count[v]++
		if n := count[v]; n > bestN || (n == bestN && v < best) {
			best, bestN = v, n
		}
	}
	return best
}

// Slices returns the EndpointSlices of svc: one per pair of proxy ports
// (named http and https as the Service's ports are), each endpoint a node,
// ready while the node is Ready.
func Slices(svc *corev1.Service, proxies []Proxy) []*discoveryv1.EndpointSlice {
	type portPair struct{ http, https int32 }
	groups := map[portPair][]Proxy{}
	for _, p := range proxies {
		k := portPair{p.HTTP, p.HTTPS}
		groups[k] = append(groups[k], p)
	}
	owner := metav1.OwnerReference{
		APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	var out []*discoveryv1.EndpointSlice
	for k, ps := range groups {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d-%d", ServiceName, k.http, k.https), Namespace: Namespace,
				Labels: map[string]string{
					discoveryv1.LabelServiceName: ServiceName,
					discoveryv1.LabelManagedBy:   ManagedBy,
				},
				OwnerReferences: []metav1.OwnerReference{owner},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{
				{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(k.http)},
				{Name: ptr.To("https"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(k.https)},
			},
		}
		for _, p := range ps {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{p.Addr.String()},
				Conditions: discoveryv1.EndpointConditions{
					Ready: ptr.To(p.Ready), Serving: ptr.To(p.Ready), Terminating: ptr.To(false),
				},
				NodeName: ptr.To(p.Node),
			})
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
