// Package servicelb is skiff's built-in service load balancer, in the spirit
// of k3s's ServiceLB: a Service of type LoadBalancer without a
// loadBalancerClass gets the addresses of the cluster's ready nodes as its
// ingress IPs. kube-proxy already forwards traffic for a Service's ingress
// IPs, so a client reaching any node on the Service's port reaches its
// endpoints, and `kubectl get svc` shows an EXTERNAL-IP.
//
// It owns only status.loadBalancer of such Services; it does not move
// traffic itself.
package servicelb

import (
	"context"
	"log/slog"
	"reflect"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
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
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()

	enqueueService := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	enqueueAll := func(any) {
		list, _ := services.Lister().List(labels.Everything())
		for _, s := range list {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				enqueueService(s)
			}
		}
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueService, UpdateFunc: func(_, n any) { enqueueService(n) },
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
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())

	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		err := c.sync(ctx, key, services.Lister(), nodes.Lister())
		if err != nil {
			c.log.Warn("service load balancer: sync failed", "service", key, "err", err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func (c *Controller) sync(ctx context.Context, key string, services corelisters.ServiceLister, nodes corelisters.NodeLister) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := services.Services(ns).Get(name)
	if err != nil || !managed(svc) {
		return nil // deleted, or not ours: nothing to do
	}
	list, err := nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	want := Ingress(svc, list)
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

// Ingress is the status a managed Service should carry: one entry per ready
// node address (ExternalIP where a node has one, else InternalIP), sorted.
func Ingress(svc *corev1.Service, nodes []*corev1.Node) []corev1.LoadBalancerIngress {
	ips := nodeAddresses(nodes)
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
