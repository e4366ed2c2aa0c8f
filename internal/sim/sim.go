package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Sim is a set of simulated nodes and the pods bound to them.
type Sim struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	clock  clock.Clock
	names  []string // node names, fixed by New

	podQueue  workqueue.TypedRateLimitingInterface[string] // namespace/name of pods on our nodes
	nodeQueue workqueue.TypedRateLimitingInterface[string] // node names, re-added every heartbeat

	// Set by Run before any worker starts, read-only afterwards.
	pods  corelisters.PodLister
	nodes corelisters.NodeLister

	// nodeState's keys are fixed by New. A value is touched only by the
	// worker holding that node's queue item; a workqueue never hands one
	// item to two workers at once.
	nodeState map[string]*nodeState

	mu      sync.Mutex // guards the following
	ips     *ipam      // pod addresses
	nodeIPs *pool      // node InternalIPs

	started    atomic.Bool
	registered atomic.Int64
	ready      chan struct{} // closed (once, via readyOnce) when every node is registered
	readyOnce  sync.Once
}

type nodeState struct {
	node       *corev1.Node // as last written; nil until registered
	lease      *coordinationv1.Lease
	lastStatus time.Time // when the conditions last got a heartbeat
}

// New checks cfg and prepares a Sim that talks to the API server rc points
// at; Run starts it. rc is copied, with cfg's QPS and Burst.
func New(cfg Config, rc *rest.Config) (*Sim, error) {
	cfg, err := cfg.defaults()
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.UserAgent == "" {
		rc.UserAgent = "skiff-sim"
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("sim client: %w", err)
	}
	s := &Sim{
		cfg:       cfg,
		client:    client,
		log:       cfg.Log,
		clock:     clock.RealClock{},
		nodeState: make(map[string]*nodeState, cfg.Nodes),
		ips:       newIPAM(),
		nodeIPs:   newPool(nodeNetwork),
		ready:     make(chan struct{}),
	}
	for i := range cfg.Nodes {
		name := cfg.NamePrefix + strconv.Itoa(i)
		s.names = append(s.names, name)
		s.nodeState[name] = &nodeState{}
	}
	s.podQueue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 30*time.Second),
			&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(cfg.QPS), cfg.Burst)},
		),
		workqueue.TypedRateLimitingQueueConfig[string]{},
	)
	s.nodeQueue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, cfg.HeartbeatInterval),
		workqueue.TypedRateLimitingQueueConfig[string]{},
	)
	return s, nil
}

// NodeNames are the names of the Sim's nodes.
func (s *Sim) NodeNames() []string { return append([]string(nil), s.names...) }

// Registered is closed once every node has been registered (or reused) and
// marked Ready. The scheduler uses a new node only after the node lifecycle
// controller has removed the node.kubernetes.io/not-ready taint that
// admission puts on every new Node, a moment later.
func (s *Sim) Registered() <-chan struct{} { return s.ready }

// Run registers the nodes, keeps them alive and plays out their pods until
// ctx ends; it returns after its goroutines have exited. The Nodes and their
// Leases stay behind. A Sim runs once.
func (s *Sim) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	ours := make(map[string]bool, len(s.names))
	for _, n := range s.names {
		ours[n] = true
	}
	podInformer := coreinformers.NewFilteredPodInformer(s.client, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" })
	nodeInformer := coreinformers.NewNodeInformer(s.client, 0, cache.Indexers{})
	for _, inf := range []cache.SharedIndexInformer{podInformer, nodeInformer} {
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return err
		}
	}
	enqueue := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && ours[pod.Spec.NodeName] {
			s.podQueue.Add(cache.MetaObjectToName(pod).String())
		}
	}
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			enqueue(obj)
		},
	}); err != nil {
		return err
	}
	s.pods = corelisters.NewPodLister(podInformer.GetIndexer())
	s.nodes = corelisters.NewNodeLister(nodeInformer.GetIndexer())

	var wg sync.WaitGroup
	defer wg.Wait()
	defer s.nodeQueue.ShutDown()
	defer s.podQueue.ShutDown()
	wg.Go(func() { podInformer.RunWithContext(ctx) })
	wg.Go(func() { nodeInformer.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced, nodeInformer.HasSynced) {
		return nil // ctx ended first
	}
	s.claimExisting(ours)

	for _, n := range s.names {
		s.nodeQueue.Add(n)
	}
	for range min(max(2, len(s.names)/10), 128) {
		wg.Go(func() {
			for s.next(ctx, s.nodeQueue, s.syncNode, s.cfg.HeartbeatInterval) {
			}
		})
	}
	for range s.cfg.Workers {
		wg.Go(func() {
			for s.next(ctx, s.podQueue, s.syncPod, 0) {
			}
		})
	}
	s.log.Info("sim started", "nodes", len(s.names), "prefix", s.cfg.NamePrefix)
	<-ctx.Done()
	s.log.Info("sim stopping", "prefix", s.cfg.NamePrefix)
	return nil
}

// next processes one item of q; it reports false once q is shut down. On
// success the item is re-added after every (when non-zero); on error it is
// retried with backoff.
func (s *Sim) next(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) error, every time.Duration) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)
	if err := sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("sim sync failed, retrying", "key", key, "err", err)
		}
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	if every > 0 {
		q.AddAfter(key, wait.Jitter(every, 0.1))
	}
	return true
}

// claimExisting records the addresses that existing nodes and running pods
// already hold, so that a restarted Sim does not hand them out again.
func (s *Sim) claimExisting(ours map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes, _ := s.nodes.List(labels.Everything())
	cidrs := map[string][]netip.Prefix{}
	for _, n := range nodes {
		if ip, ok := nodeAddress(n); ok {
			s.nodeIPs.claim(ip)
		}
		cidrs[n.Name] = podCIDRs(n)
	}
	pods, _ := s.pods.List(labels.Everything())
	for _, p := range pods {
		if !ours[p.Spec.NodeName] || p.Status.Phase != corev1.PodRunning || p.Spec.HostNetwork {
			continue
		}
		var addrs []netip.Addr
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				addrs = append(addrs, a)
			}
		}
		s.ips.claim(cache.MetaObjectToName(p).String(), p.UID, addrs, cidrs[p.Spec.NodeName])
	}
}

// syncNode registers a node if it is not yet, renews its Lease and, now
// and then, its conditions.
func (s *Sim) syncNode(ctx context.Context, name string) error {
	st := s.nodeState[name]
	now := s.clock.Now()
	if st.node == nil {
		if err := s.register(ctx, name, st, now); err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		st.lastStatus = now
		if s.registered.Add(1) == int64(len(s.names)) {
			s.readyOnce.Do(func() { close(s.ready) })
		}
	}
	if err := s.renewLease(ctx, st, now); err != nil {
		return fmt.Errorf("renew lease %s: %w", name, err)
	}
	if now.Sub(st.lastStatus) >= s.cfg.StatusInterval {
		if err := s.heartbeatStatus(ctx, name, now); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
		st.lastStatus = now
	}
	return nil
}

// register creates the Node, or takes over one left by an earlier Sim and
// reports it healthy again.
func (s *Sim) register(ctx context.Context, name string, st *nodeState, now time.Time) error {
	nodes := s.client.CoreV1().Nodes()
	existing, err := s.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		s.mu.Lock()
		ip, ok := s.nodeIPs.allocate()
		s.mu.Unlock()
		if !ok {
			return fmt.Errorf("node network %s is exhausted", nodeNetwork)
		}
		created, err := nodes.Create(ctx, newNode(s.cfg, name, ip, now), metav1.CreateOptions{})
		if err == nil {
			st.node = created
			s.log.Debug("node registered", "node", name, "ip", ip)
			return nil
		}
		s.mu.Lock()
		s.nodeIPs.release(ip)
		s.mu.Unlock()
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		if existing, err = nodes.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	ip, ok := nodeAddress(existing)
	if !ok {
		s.mu.Lock()
		ip, ok = s.nodeIPs.allocate()
		s.mu.Unlock()
		if !ok {
			return fmt.Errorf("node network %s is exhausted", nodeNetwork)
		}
	}
	n := existing.DeepCopy()
	n.Status = nodeStatus(s.cfg, name, ip, existing.Status.Conditions, now)
	n.Status.Images = existing.Status.Images
	updated, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	st.node = updated
	s.log.Debug("node reused", "node", name, "ip", ip)
	return nil
}

// renewLease renews the node's Lease, creating it when it is missing, as
// the kubelet's lease controller does.
func (s *Sim) renewLease(ctx context.Context, st *nodeState, now time.Time) error {
	leases := s.client.CoordinationV1().Leases(LeaseNamespace)
	if st.lease == nil {
		l, err := leases.Get(ctx, st.node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			created, err := leases.Create(ctx, newLease(st.node, now), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			st.lease = created
			return nil
		}
		if err != nil {
			return err
		}
		st.lease = l
	}
	l := st.lease.DeepCopy()
	want := newLease(st.node, now)
	l.Spec.HolderIdentity = want.Spec.HolderIdentity
	l.Spec.LeaseDurationSeconds = want.Spec.LeaseDurationSeconds
	l.Spec.RenewTime = want.Spec.RenewTime
	if len(l.OwnerReferences) == 0 {
		l.OwnerReferences = want.OwnerReferences
	}
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		st.lease = nil // read it again next time
		return err
	}
	st.lease = updated
	return nil
}

// heartbeatStatus patches fresh conditions into the node's status, as the
// kubelet's status loop does.
func (s *Sim) heartbeatStatus(ctx context.Context, name string, now time.Time) error {
	var existing []corev1.NodeCondition
	if n, err := s.nodes.Get(name); err == nil {
		existing = n.Status.Conditions
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": nodeConditions(existing, now)}})
	if err != nil {
		return err
	}
	_, err = s.client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// syncPod moves one pod to its next state.
func (s *Sim) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if _, ours := s.nodeState[pod.Spec.NodeName]; !ours {
		s.release(key)
		return nil
	}
	b, err := podBehaviour(pod, s.cfg.RunTime)
	if err != nil {
		s.log.Warn("bad sim annotation, using the default", "err", err)
	}
	now := s.clock.Now()
	a := decide(pod, now, s.cfg.StartDelay, b)
	switch a.step {
	case stepWait:
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			s.release(key)
		}
		if a.after > 0 {
			s.podQueue.AddAfter(key, a.after)
		}
		return nil
	case stepStart:
		return s.startPod(ctx, key, pod, now)
	case stepExit:
		if err := s.writeStatus(ctx, pod, exitedStatus(pod, b.exitCode, now)); err != nil {
			return err
		}
		s.release(key)
		return nil
	case stepKill:
		if !killed(pod) {
			if err := s.writeStatus(ctx, pod, killedStatus(pod, now)); err != nil {
				return err
			}
		}
		if g := pod.DeletionGracePeriodSeconds; g == nil || *g != 0 {
			err := s.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr(int64(0)),
				Preconditions:      &metav1.Preconditions{UID: &pod.UID},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("delete pod %s: %w", key, err)
			}
		}
		s.release(key)
		return nil
	}
	return nil
}

// startPod gives the pod its addresses and reports it Running.
func (s *Sim) startPod(ctx context.Context, key string, pod *corev1.Pod, now time.Time) error {
	node, err := s.nodes.Get(pod.Spec.NodeName)
	if err != nil {
		return fmt.Errorf("pod %s: node %s: %w", key, pod.Spec.NodeName, err)
	}
	hostIP, _ := nodeAddress(node)
	podIPs := []string{hostIP.String()}
	if !pod.Spec.HostNetwork {
		s.mu.Lock()
		addrs, err := s.ips.assign(key, pod.UID, podCIDRs(node))
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("pod %s: %w", key, err)
		}
		podIPs = podIPs[:0]
		for _, a := range addrs {
			podIPs = append(podIPs, a.String())
		}
	}
	return s.writeStatus(ctx, pod, runningStatus(pod, hostIP.String(), podIPs, now))
}

// writeStatus writes status into pods/status; a pod gone meanwhile is no error.
func (s *Sim) writeStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	p := pod.DeepCopy()
	p.Status = status
	_, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

func (s *Sim) release(key string) {
	s.mu.Lock()
	s.ips.release(key)
	s.mu.Unlock()
}

// stripManagedFields drops what the Sim never reads, to keep 30,000 pods small.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
