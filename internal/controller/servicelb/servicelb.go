// Package servicelb is skiff's built-in service load balancer, in the spirit
// of k3s's ServiceLB: a Service of type LoadBalancer without a
// loadBalancerClass gets the addresses of the cluster's ready nodes as its
// ingress IPs. kube-proxy already forwards traffic for a Service's ingress
// IPs, so a client reaching any node on the Service's port reaches its
// endpoints, and `kubectl get svc` shows an EXTERNAL-IP.
//
// As with k3s's ServiceLB, a port is held on a node by the first Service
// to ask for it (a younger one is pending on that node), and a Service whose
// externalTrafficPolicy is Local gets only the nodes that hold one of its
// ready endpoints (kube-proxy drops outside traffic for it elsewhere).
//
// It owns only status.loadBalancer of such Services; it does not move
// traffic itself.
package servicelb

import (
	"cmp"
	"context"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Controller keeps LoadBalancer Services' ingress IPs equal to the ready nodes' addresses.
type Controller struct {
	client kubernetes.Interface
	log    *slog.Logger
}

// New returns a controller writing through client.
func New(client kubernetes.Interface, log *slog.Logger) *Controller {
	return &Controller{client: client, log: log}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(c.client, 10*time.Minute)
	services := factory.Core().V1().Services()
	nodes := factory.Core().V1().Nodes()
	slicesInf := factory.Discovery().V1().EndpointSlices()
	// Named, so that its workqueue_* metrics carry name="service-lb".
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "service-lb"})
	defer queue.ShutDown()

	// A Service's ingress depends on the older Services' (their ports
	// claimed on each node), so any change that matters enqueues every
	// managed Service; the queue folds the repeats.
	enqueueAll := func(any) {
		list, _ := services.Lister().List(labels.Everything())
		for _, s := range list {
			if managed(s) {
				if key, err := cache.MetaNamespaceKeyFunc(s); err == nil {
					queue.Add(key)
				}
			}
		}
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll, DeleteFunc: enqueueAll, UpdateFunc: func(o, n any) {
			if before, after := o.(*corev1.Service), n.(*corev1.Service); managed(before) || managed(after) {
				enqueueAll(n)
			}
		},
	}); err != nil {
		return err
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll, DeleteFunc: enqueueAll, UpdateFunc: func(o, n any) {
			if !reflect.DeepEqual(nodeAddresses([]*corev1.Node{o.(*corev1.Node)}), nodeAddresses([]*corev1.Node{n.(*corev1.Node)})) {
				enqueueAll(n)
			}
		},
	}); err != nil {
		return err
	}
	// An EndpointSlice change matters to a Local Service.
	sliceChanged := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
				if svc, err := services.Lister().Services(s.Namespace).Get(name); err == nil && managed(svc) &&
					svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
					enqueueAll(nil)
				}
			}
		}
	}
	if _, err := slicesInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: sliceChanged, UpdateFunc: func(_, n any) { sliceChanged(n) }, DeleteFunc: sliceChanged,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())

	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		err := c.sync(ctx, key, services.Lister(), nodes.Lister(), slicesInf.Lister())
		if err != nil {
			c.log.Warn("service load balancer: sync failed", "service", key, "err", err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func (c *Controller) sync(ctx context.Context, key string, services corelisters.ServiceLister, nodes corelisters.NodeLister, endpointSlices discoverylisters.EndpointSliceLister) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := services.Services(ns).Get(name)
	if err != nil || !managed(svc) {
		return nil // deleted, or not ours: nothing to do
	}
	all, err := services.List(labels.Everything())
	if err != nil {
		return err
	}
	nodeList, err := nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	slicesOf := func(s *corev1.Service) []*discoveryv1.EndpointSlice {
		list, _ := endpointSlices.EndpointSlices(s.Namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: s.Name}))
		return list
	}
	want := Assign(all, nodeList, slicesOf)[types.NamespacedName{Namespace: ns, Name: name}]
	if reflect.DeepEqual(svc.Status.LoadBalancer.Ingress, want) {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Status.LoadBalancer.Ingress = want
	_, err = c.client.CoreV1().Services(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// managed: a LoadBalancer Service that asks for no other implementation.
func managed(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

// Assign returns the status every managed Service should carry: one entry
// per address (ExternalIP where a node has one, else InternalIP), sorted,
// of the ready, schedulable nodes
//   - where no older managed Service holds one of its ports (same number
//     and protocol): the first Service to ask for a port on a node keeps it,
//     and a younger one is pending there, as with k3s's ServiceLB (where a
//     node's host port can be taken once), since kube-proxy can send a
//     node address's port to only one Service;
//   - for an externalTrafficPolicy Local Service, that hold one of its ready
//     endpoints (slicesOf lists its EndpointSlices): kube-proxy drops
//     outside traffic for it on the other nodes.
//
// Older is by creation time, then namespace and name.
func Assign(services []*corev1.Service, nodes []*corev1.Node, slicesOf func(*corev1.Service) []*discoveryv1.EndpointSlice) map[types.NamespacedName][]corev1.LoadBalancerIngress {
	var lbs []*corev1.Service
	for _, s := range services {
		if managed(s) {
			lbs = append(lbs, s)
		}
	}
	slices.SortFunc(lbs, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	type portKey struct {
		proto corev1.Protocol
		port  int32
	}
	claimed := map[string]map[portKey]bool{} // by node name
	out := map[types.NamespacedName][]corev1.LoadBalancerIngress{}
	for _, svc := range lbs {
		var local map[string]bool
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			local = map[string]bool{}
			for _, s := range slicesOf(svc) {
				for _, e := range s.Endpoints {
					if e.NodeName != nil && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
						local[*e.NodeName] = true
					}
				}
			}
		}
		keys := make([]portKey, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			keys[i] = portKey{cmp.Or(p.Protocol, corev1.ProtocolTCP), p.Port}
		}
		var got []*corev1.Node
		for _, n := range nodes {
			if !ready(n) || n.Spec.Unschedulable || (local != nil && !local[n.Name]) {
				continue
			}
			held := claimed[n.Name]
			if slices.ContainsFunc(keys, func(k portKey) bool { return held[k] }) {
				continue
			}
			if held == nil {
				held = map[portKey]bool{}
				claimed[n.Name] = held
			}
			for _, k := range keys {
				held[k] = true
			}
			got = append(got, n)
		}
		out[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = ingressOf(nodeAddresses(got))
	}
	return out
}

// ingressOf turns addresses into status entries (VIP mode), nil for none.
func ingressOf(ips []string) []corev1.LoadBalancerIngress {
	if len(ips) == 0 {
		return nil
	}
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	return out
}

// nodeAddresses lists the ready, schedulable nodes' addresses, sorted.
func nodeAddresses(nodes []*corev1.Node) []string {
	var ips []string
	for _, n := range nodes {
		if !ready(n) || n.Spec.Unschedulable {
			continue
		}
		var internal, external string
		for _, a := range n.Status.Addresses {
			switch a.Type {
			case corev1.NodeInternalIP:
				if internal == "" {
					internal = a.Address
				}
			case corev1.NodeExternalIP:
				if external == "" {
					external = a.Address
				}
			}
		}
		if external != "" {
			ips = append(ips, external)
		} else if internal != "" {
			ips = append(ips, internal)
		}
	}
	sort.Strings(ips)
	return ips
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
