package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// load runs every request-path measurement against one server with the
// controller manager and scheduler disabled: pods are stored objects only.
func (b *bench) load(ctx context.Context) error {
	fmt.Println("== load: API server and embedded etcd only (--disable-controller-manager --disable-scheduler)")
	s, err := benchkit.StartServer(benchkit.ServerOptions{
		Binary: b.skiff, DataDir: b.dataDir("load"), Env: b.env,
		Args: append([]string{"--disable-controller-manager", "--disable-scheduler"}, b.args...),
	})
	if err != nil {
		return err
	}
	defer s.Stop()
	if _, err := s.WaitReady(ctx, readyTimeout); err != nil {
		return err
	}
	if err := b.idleRSS(ctx, s, "API server and etcd only"); err != nil {
		return err
	}
	cfg, err := benchkit.RestConfig(s.Kubeconfig())
	if err != nil {
		return err
	}
	admin, err := benchkit.Clientset(cfg)
	if err != nil {
		return err
	}
	if err := b.crud(ctx, cfg, admin); err != nil {
		return err
	}
	if err := b.manyPods(ctx, s, cfg, admin); err != nil {
		return err
	}
	return b.watchFanout(ctx, s, cfg, admin)
}

// crud measures create, get, update, small list and watch-event latency
// at each concurrency level, each level in a namespace of its own.
func (b *bench) crud(ctx context.Context, cfg *rest.Config, admin *kubernetes.Clientset) error {
	const small = "bench-small"
	if err := namespace(ctx, admin, small); err != nil {
		return err
	}
	for i := range 10 {
		if _, err := admin.CoreV1().Pods(small).Create(ctx, pod(fmt.Sprintf("s-%d", i), "small"), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, n := range b.plan.levels {
		if err := b.level(ctx, cfg, admin, n, small); err != nil {
			return fmt.Errorf("%d clients: %w", n, err)
		}
	}
	return nil
}

func (b *bench) level(ctx context.Context, cfg *rest.Config, admin *kubernetes.Clientset, n int, small string) error {
	fmt.Printf("== %d concurrent clients, %d operations of each kind\n", n, b.plan.opsPerLevel)
	ns := fmt.Sprintf("bench-c%d", n)
	if err := namespace(ctx, admin, ns); err != nil {
		return err
	}
	clients, err := clientsets(cfg, n)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	total, limit := b.plan.opsPerLevel, b.plan.phaseLimit

	// A watcher on its own connection times each create from the request
	// being sent to its ADDED event arriving.
	ev, err := startEventTimer(ctx, cfg, ns)
	if err != nil {
		return err
	}
	defer ev.stop()
	created := make([]*corev1.Pod, total) // element i written only by the worker doing operation i
	create := runOps(ctx, clients, total, limit, func(ctx context.Context, c kubernetes.Interface, i int) error {
		name := fmt.Sprintf("p-%05d", i)
		ev.sent(name)
		p, err := c.CoreV1().Pods(ns).Create(ctx, pod(name, "crud"), metav1.CreateOptions{})
		if err == nil {
			created[i] = p
		}
		return err
	})
	target, ok := "", ""
	if n == 10 {
		target, ok = "p99 < 10 ms", benchkit.Verdict(create.lat.P99 < 10*time.Millisecond && create.errs == 0)
	}
	b.report.AddTarget(fmt.Sprintf("create pod, %d clients", n), create.String(), target, ok)
	events := ev.wait(create.done-create.errs, 30*time.Second)
	b.report.Add(fmt.Sprintf("watch event (create sent → ADDED received), %d clients", n),
		fmt.Sprintf("p50 %s, p99 %s (%d events)", benchkit.Ms(events.P50), benchkit.Ms(events.P99), events.N))

	var pods []*corev1.Pod
	for _, p := range created {
		if p != nil {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return fmt.Errorf("no pod was created: %v", create.firstErr)
	}
	get := runOps(ctx, clients, total, limit, func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(ns).Get(ctx, pods[i%len(pods)].Name, metav1.GetOptions{})
		return err
	})
	b.report.Add(fmt.Sprintf("get pod, %d clients", n), get.String())

	// Unconditional updates (no resourceVersion), which pods allow, so
	// that clients touching the same pod do not conflict.
	update := runOps(ctx, clients, total, limit, func(ctx context.Context, c kubernetes.Interface, i int) error {
		p := pods[i%len(pods)].DeepCopy()
		p.ResourceVersion = ""
		p.Annotations = map[string]string{"bench/update": strconv.Itoa(i)}
		_, err := c.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	b.report.Add(fmt.Sprintf("update pod, %d clients", n), update.String())

	list := runOps(ctx, clients, total, limit, func(ctx context.Context, c kubernetes.Interface, i int) error {
		l, err := c.CoreV1().Pods(small).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != 10 {
			err = fmt.Errorf("list %s: %d pods, want 10", small, len(l.Items))
		}
		return err
	})
	b.report.Add(fmt.Sprintf("list 10 pods (consistent), %d clients", n), list.String())

	// Unscheduled pods are deleted at once; this keeps the store at the
	// pods the later phases create.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	zero := int64(0)
	if err := admin.CoreV1().Pods(ns).DeleteCollection(dctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("delete pods in %s: %w", ns, err)
	}
	return nil
}

// eventTimer measures watch-event latency for named objects.
type eventTimer struct {
	w       watch.Interface
	sentAt  sync.Map // object name → time.Time the create was sent
	lat     benchkit.Latencies
	got     atomic.Int64
	stopped chan struct{} // closed by the reading goroutine when the watch ends
}

func startEventTimer(ctx context.Context, cfg *rest.Config, ns string) (*eventTimer, error) {
	c, err := benchkit.Clientset(cfg)
	if err != nil {
		return nil, err
	}
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, err
	}
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		return nil, err
	}
	t := &eventTimer{w: w, stopped: make(chan struct{})}
	go func() {
		defer close(t.stopped)
		for e := range w.ResultChan() {
			p, ok := e.Object.(*corev1.Pod)
			if e.Type != watch.Added || !ok {
				continue
			}
			if at, ok := t.sentAt.Load(p.Name); ok {
				t.lat.Add(time.Since(at.(time.Time)))
				t.got.Add(1)
			}
		}
	}()
	return t, nil
}

func (t *eventTimer) sent(name string) { t.sentAt.Store(name, time.Now()) }

// wait returns once n events arrived or timeout passed.
func (t *eventTimer) wait(n int, timeout time.Duration) benchkit.Summary {
	deadline := time.Now().Add(timeout)
	for t.got.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return t.lat.Summary()
}

func (t *eventTimer) stop() {
	t.w.Stop()
	select {
	case <-t.stopped:
	case <-time.After(5 * time.Second):
	}
}
