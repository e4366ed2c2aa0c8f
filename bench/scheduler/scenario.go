package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// scenario runs one scenario in a namespace of its own, reads the
// server's memory while its pods exist, and deletes the namespace when
// cleanUp is set (another scenario follows).
func (b *bench) scenario(ctx context.Context, sc scenario, cleanUp bool) error {
	ns := "bench-" + sc.String()
	if err := benchkit.CreateNamespace(ctx, b.client, ns); err != nil {
		return err
	}
	tr, err := startTracker(ctx, b.client, ns)
	if err != nil {
		return err
	}
	before, _ := benchkit.Scrape(ctx, b.client.CoreV1().RESTClient())
	sctx, cancel := context.WithTimeout(ctx, b.opts.scenarioTimeout)
	switch sc.kind {
	case "deployment":
		err = b.deployment(sctx, ns, sc, tr)
	default:
		err = b.pending(sctx, ns, sc, tr)
	}
	cancel()
	if ctx.Err() == nil {
		if after, err := benchkit.Scrape(ctx, b.client.CoreV1().RESTClient()); err == nil && before != nil {
			b.schedulerMetrics(sc, before, after)
		}
		b.scenarioMemory(sc, tr.count())
	}
	tr.stop()
	if !cleanUp {
		return err
	}
	if derr := b.deleteNamespace(ctx, ns, 10*time.Minute); err == nil {
		err = derr
	}
	return err
}

// pending creates sc.pods pods as fast as the clients can and measures
// how fast the scheduler binds them.
func (b *bench) pending(ctx context.Context, ns string, sc scenario, tr *tracker) error {
	clients := make([]*kubernetes.Clientset, b.opts.clients)
	for i := range clients {
		var err error
		if clients[i], err = benchkit.Clientset(b.rc); err != nil {
			return err
		}
	}
	pod := plainPod
	if sc.kind == "spread" {
		pod = spreadPod
	}
	var next, created, failed atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(sc.pods) {
					return
				}
				p := pod(fmt.Sprintf("%s-%d", sc.kind, i))
				var err error
				for try := 0; try < 5 && ctx.Err() == nil; try++ {
					if _, err = c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err == nil {
						break
					}
					sleep(ctx, 100*time.Millisecond<<try)
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	createTook := time.Since(began)
	boundAtCreated := tr.boundCount()
	n := int(created.Load())
	fmt.Printf("  %d pods created in %s (%d failed), %d bound by then\n", n, createTook.Round(time.Millisecond), failed.Load(), boundAtCreated)

	waitErr := tr.waitBound(ctx, n)
	binds := tr.bindTimes()
	var last time.Time
	if len(binds) > 0 {
		last = binds[len(binds)-1]
	}
	bound := len(binds)
	window := last.Sub(began)
	rate := 0.0
	if window > 0 {
		rate = float64(bound) / window.Seconds()
	}
	what := fmt.Sprintf("%s: scheduling throughput, %d nodes", sc, b.opts.nodes)
	value := fmt.Sprintf("%.0f pods/s (%d bound in %s from first create to last bind)", rate, bound, benchkit.Ms(window))
	if sc.kind == "plain" && b.opts.nodes >= 1000 {
		b.report.AddTarget(what, value, "≥ 1,000 pods/s at 1,000 nodes", benchkit.Verdict(rate >= 1000 && bound == sc.pods))
	} else {
		b.report.Add(what, value)
	}
	b.report.Add(sc.String()+": pod creation", fmt.Sprintf("%.0f pods/s (%d clients; %d of %d bound when the last create returned)",
		float64(n)/createTook.Seconds(), b.opts.clients, boundAtCreated, n))
	b.report.Add(sc.String()+": peak binding rate, best 5 s", fmt.Sprintf("%.0f pods/s", peakRate(binds, 5*time.Second)))
	if sc.kind == "spread" {
		b.report.Add(sc.String()+": spread", tr.spread())
	}
	if waitErr != nil {
		return fmt.Errorf("%d of %d pods bound: %w", bound, n, waitErr)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d pod creations failed", failed.Load())
	}
	return nil
}

// deployment creates one Deployment of sc.pods replicas and measures the
// time until every pod is Ready.
func (b *bench) deployment(ctx context.Context, ns string, sc scenario, tr *tracker) error {
	replicas := int32(sc.pods)
	tmpl := plainPod("")
	labels := map[string]string{"app": "bench-deployment"}
	tmpl.ObjectMeta = metav1.ObjectMeta{Labels: labels}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
		},
	}
	began := time.Now()
	if _, err := b.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	waitErr := tr.waitReady(ctx, sc.pods)
	seen, bound, ready := tr.lasts()
	since := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return benchkit.Ms(t.Sub(began))
	}
	n, nb, nr := tr.counts()
	readyTook := ready.Sub(began)
	value := fmt.Sprintf("%s (%d of %d Ready)", since(ready), nr, sc.pods)
	what := fmt.Sprintf("%s: Deployment created → all pods Ready, %d nodes", sc, b.opts.nodes)
	if sc.pods >= 10000 {
		b.report.AddTarget(what, value, "< 30 s for 10,000 replicas", benchkit.Verdict(nr == sc.pods && readyTook < 30*time.Second))
	} else {
		b.report.Add(what, value)
	}
	b.report.Add(sc.String()+": → last pod created (ReplicaSet controller)", fmt.Sprintf("%s (%d pods, %.0f/s)", since(seen), n, float64(n)/seen.Sub(began).Seconds()))
	b.report.Add(sc.String()+": → last pod bound (scheduler)", fmt.Sprintf("%s (%d pods)", since(bound), nb))
	if dep, err := b.client.AppsV1().Deployments(ns).Get(ctx, "bench", metav1.GetOptions{}); err == nil {
		fmt.Printf("  deployment status: replicas %d, ready %d, available %d\n", dep.Status.Replicas, dep.Status.ReadyReplicas, dep.Status.AvailableReplicas)
	}
	if waitErr != nil {
		return fmt.Errorf("%d of %d pods Ready: %w", nr, sc.pods, waitErr)
	}
	return nil
}

// schedulerMetrics records what the in-process scheduler's own metrics
// (served on the API server's /metrics) say about the scenario: the
// scheduling algorithm runs on one goroutine, pod after pod, so its mean
// bounds the throughput; binding is an API call made asynchronously.
func (b *bench) schedulerMetrics(sc scenario, before, after benchkit.Samples) {
	delta := func(name string, labels ...string) float64 {
		return after.Sum(name, labels...) - before.Sum(name, labels...)
	}
	attempts := func(result string) float64 {
		return delta("scheduler_schedule_attempts_total", `result="`+result+`"`)
	}
	algN := delta("scheduler_scheduling_algorithm_duration_seconds_count")
	if algN == 0 {
		b.report.Add(sc.String()+": scheduler metrics", "none on /metrics")
		return
	}
	alg := delta("scheduler_scheduling_algorithm_duration_seconds_sum") / algN
	bindN := delta("scheduler_framework_extension_point_duration_seconds_count", `extension_point="Bind"`)
	bind := 0.0
	if bindN > 0 {
		bind = delta("scheduler_framework_extension_point_duration_seconds_sum", `extension_point="Bind"`) / bindN
	}
	b.report.Add(sc.String()+": scheduling algorithm per pod (scheduler metrics)",
		fmt.Sprintf("mean %s → at most %.0f pods/s on one goroutine; Bind API call mean %s; attempts: %.0f scheduled, %.0f unschedulable, %.0f error",
			benchkit.Ms(time.Duration(alg*float64(time.Second))), 1/alg, benchkit.Ms(time.Duration(bind*float64(time.Second))),
			attempts("scheduled"), attempts("unschedulable"), attempts("error")))
}

// scenarioMemory records the server's memory while a scenario's pods exist.
func (b *bench) scenarioMemory(sc scenario, pods int) {
	m, err := b.server.Memory()
	if err != nil {
		b.report.Add(sc.String()+": server RSS", "unreadable: "+err.Error())
		return
	}
	what := fmt.Sprintf("%s: server RSS holding %d pods, %d nodes", sc, pods, b.opts.nodes)
	if pods >= 30000 && b.opts.nodes >= 1000 {
		b.report.AddTarget(what, m.String(), "< 1 GiB at 30,000 pods / 1,000 nodes", benchkit.Verdict(m.RSS < 1<<30))
	} else {
		b.report.Add(what, m.String())
	}
	if sm, err := benchkit.ProcessMemory(b.sim.PID()); err == nil {
		b.report.Add(sc.String()+": skiff sim RSS (not part of the server)", sm.String())
	}
	b.heapProfile(what)
}

func plainPod(name string) *corev1.Pod {
	zero := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name:  "c",
				Image: "localhost/skiff/testhost:latest",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("10m"),
					corev1.ResourceMemory: resource.MustParse("16Mi"),
				}},
			}},
		},
	}
}

// spreadPod is plainPod with a preferred anti-affinity to its siblings and
// a hard spread over hostnames: the scheduler's costly plugins.
func spreadPod(name string) *corev1.Pod {
	p := plainPod(name)
	p.Labels = map[string]string{"app": "bench-spread"}
	sel := &metav1.LabelSelector{MatchLabels: p.Labels}
	p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: sel,
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
	p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector:     sel,
	}}
	return p
}

// peakRate is the most timestamps of sorted in any window of length w, per second.
func peakRate(sorted []time.Time, w time.Duration) float64 {
	best, j := 0, 0
	for i := range sorted {
		for sorted[i].Sub(sorted[j]) > w {
			j++
		}
		best = max(best, i-j+1)
	}
	return float64(best) / w.Seconds()
}

// tracker watches a namespace's pods and notes, per pod, when the
// benchmark first saw it, saw it bound (spec.nodeName set) and saw it Ready.
type tracker struct {
	stopCh chan struct{} // closed by stop

	mu    sync.Mutex // guards the following
	seen  map[string]time.Time
	bound map[string]time.Time
	ready map[string]time.Time
	nodes map[string]string // pod → node
}

func startTracker(ctx context.Context, c kubernetes.Interface, ns string) (*tracker, error) {
	t := &tracker{
		stopCh: make(chan struct{}),
		seen:   map[string]time.Time{}, bound: map[string]time.Time{}, ready: map[string]time.Time{},
		nodes: map[string]string{},
	}
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	_ = inf.SetTransform(func(o any) (any, error) {
		if p, ok := o.(*corev1.Pod); ok {
			p.ManagedFields = nil
		}
		return o, nil
	})
	observe := func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			t.observe(p, time.Now())
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, o any) { observe(o) },
	}); err != nil {
		return nil, err
	}
	f.Start(t.stopCh)
	synced := make(chan bool, 1)
	go func() { synced <- cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) }()
	select {
	case ok := <-synced:
		if !ok {
			t.stop()
			return nil, ctx.Err()
		}
	case <-time.After(time.Minute):
		t.stop()
		return nil, fmt.Errorf("pod informer for %s not synced within a minute", ns)
	}
	return t, nil
}

func (t *tracker) stop() { close(t.stopCh) }

func (t *tracker) observe(p *corev1.Pod, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[p.Name]; !ok {
		t.seen[p.Name] = now
	}
	if _, ok := t.bound[p.Name]; !ok && p.Spec.NodeName != "" {
		t.bound[p.Name] = now
		t.nodes[p.Name] = p.Spec.NodeName
	}
	if _, ok := t.ready[p.Name]; !ok && podReady(p) {
		t.ready[p.Name] = now
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

func (t *tracker) boundCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bound)
}

func (t *tracker) counts() (seen, bound, ready int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen), len(t.bound), len(t.ready)
}

// bindTimes are the times pods were seen bound, ascending.
func (t *tracker) bindTimes() []time.Time {
	t.mu.Lock()
	out := make([]time.Time, 0, len(t.bound))
	for _, v := range t.bound {
		out = append(out, v)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// lasts are the latest first-seen, bound and Ready times.
func (t *tracker) lasts() (seen, bound, ready time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	latest := func(m map[string]time.Time) (l time.Time) {
		for _, v := range m {
			if v.After(l) {
				l = v
			}
		}
		return l
	}
	return latest(t.seen), latest(t.bound), latest(t.ready)
}

// spread summarises how many pods each node got.
func (t *tracker) spread() string {
	t.mu.Lock()
	per := map[string]int{}
	for _, n := range t.nodes {
		per[n]++
	}
	t.mu.Unlock()
	if len(per) == 0 {
		return "no pods bound"
	}
	lo, hi := -1, 0
	for _, c := range per {
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	return fmt.Sprintf("%d nodes used, %d–%d pods per node", len(per), lo, hi)
}

func (t *tracker) waitBound(ctx context.Context, n int) error {
	return t.wait(ctx, func() int { return t.boundCount() }, n, "bound")
}

func (t *tracker) waitReady(ctx context.Context, n int) error {
	return t.wait(ctx, func() int { _, _, r := t.counts(); return r }, n, "Ready")
}

func (t *tracker) wait(ctx context.Context, got func() int, n int, what string) error {
	last := time.Now()
	for got() < n {
		if time.Since(last) > 10*time.Second {
			s, bd, r := t.counts()
			fmt.Printf("  %d pods seen, %d bound, %d Ready (load %s)\n", s, bd, r, benchkit.LoadAvg())
			last = time.Now()
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("waiting for %d pods %s: %w", n, what, ctx.Err())
		}
	}
	return nil
}
