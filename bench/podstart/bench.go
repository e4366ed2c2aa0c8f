package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const namespace = "podstart"

// bench is one run of the benchmark.
type bench struct {
	opts   options
	root   string
	node   string
	report *benchkit.Report

	server  *benchkit.Server
	dataDir string
	client  *kubernetes.Clientset
}

func (b *bench) run(ctx context.Context) error {
	header(b.opts, b.node)
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)
	var baseline int64
	if b.opts.baseline {
		var err error
		if baseline, err = b.baselineRSS(ctx); err != nil {
			fmt.Println("baseline:", err)
		}
	}
	err := b.withAgent(ctx, baseline)
	if terr := b.teardown(); err == nil {
		err = terr
	}
	b.report.Print(os.Stdout)
	fmt.Printf("\nload average (1 min) during the run: %s\n", load.Stop())
	return err
}

// baselineRSS is the RSS of an idle server without its agent.
func (b *bench) baselineRSS(ctx context.Context) (int64, error) {
	s, err := benchkit.StartServer(benchkit.ServerOptions{
		Binary:  b.opts.skiff,
		DataDir: filepath.Join(b.root, "baseline"),
		Args:    []string{"--disable-agent"},
	})
	if err != nil {
		return 0, err
	}
	defer s.Stop()
	if _, err := s.WaitReady(ctx, 5*time.Minute); err != nil {
		return 0, err
	}
	sleep(ctx, b.opts.idle)
	m, err := benchkit.ProcessMemory(s.PID())
	if err != nil {
		return 0, err
	}
	b.report.Add("server without agent (--disable-agent), idle", m.String())
	return m.RSS, nil
}

func (b *bench) withAgent(ctx context.Context, baseline int64) error {
	kubeletPort, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	b.dataDir = filepath.Join(b.root, "server")
	args := []string{
		"--kubelet-port", strconv.Itoa(kubeletPort),
		"--node-name", b.node,
	}
	if b.opts.clusterCIDR != "" {
		args = append(args, "--cluster-cidr", b.opts.clusterCIDR)
	}
	if st, err := os.Stat(b.opts.imagesDir); err == nil && st.IsDir() {
		args = append(args, "--images-dir", b.opts.imagesDir)
	}
	args = append(args, b.opts.serverArgs...)
	b.server, err = benchkit.StartServer(benchkit.ServerOptions{Binary: b.opts.skiff, DataDir: b.dataDir, Args: args})
	if err != nil {
		return err
	}
	if _, err := b.server.WaitReady(ctx, 5*time.Minute); err != nil {
		return err
	}
	rc, err := benchkit.RestConfig(b.server.Kubeconfig())
	if err != nil {
		return err
	}
	if b.client, err = benchkit.Clientset(rc); err != nil {
		return err
	}
	if err := b.waitNodeReady(ctx, 5*time.Minute); err != nil {
		return err
	}
	b.report.Add("server start → node Ready", benchkit.Ms(time.Since(b.server.Started)))
	if err := benchkit.CreateNamespace(ctx, b.client, namespace); err != nil {
		return err
	}

	sleep(ctx, b.opts.idle)
	idle := b.memory("idle (node Ready, no pods)")
	if baseline > 0 && idle > 0 {
		share := idle - baseline
		b.report.AddTarget("agent's share of the server process, idle (with agent − without)",
			fmt.Sprintf("%s (estimate: difference of two processes)", benchkit.MiB(share)),
			"< 40 MB", benchkit.Verdict(share < 40e6))
	}

	if err := b.pods(ctx); err != nil {
		return err
	}
	sleep(ctx, 10*time.Second)
	b.memory(fmt.Sprintf("%d pods Ready", b.opts.pods))
	b.idleCPU(ctx, fmt.Sprintf("%d pods Ready", b.opts.pods), 30*time.Second)
	b.probeFailures(ctx)
	return b.deletePods(ctx)
}

// idleCPU records the CPU the server process uses over d with nothing
// changing, as a share of one core: the cost of the loops that run on their
// own (the kubelet's relist, volume manager, probes, status sync).
func (b *bench) idleCPU(ctx context.Context, state string, d time.Duration) {
	before, err := benchkit.CPUSeconds(b.server.PID())
	t0 := time.Now()
	var after float64
	if err == nil {
		if !sleep(ctx, d) {
			return
		}
		after, err = benchkit.CPUSeconds(b.server.PID())
	}
	if err != nil {
		b.report.Add("server process CPU, "+state, "unreadable: "+err.Error())
		return
	}
	b.report.Add(fmt.Sprintf("server process CPU, %s, over %s", state, d), fmt.Sprintf("%.1f %% of a core", 100*(after-before)/time.Since(t0).Seconds()))
}

// memory records the server process's own RSS, containerd's and the
// shims', and returns the server's.
func (b *bench) memory(state string) int64 {
	m, err := benchkit.ProcessMemory(b.server.PID())
	if err != nil {
		b.report.Add("server process RSS, "+state, "unreadable: "+err.Error())
		return 0
	}
	b.report.Add("server process RSS (control plane + agent), "+state, m.String())
	ctrdDir := filepath.Join(b.dataDir, "agent", "containerd")
	config := filepath.Join(ctrdDir, "config.toml")
	for _, pid := range benchkit.FindProcesses(func(argv []string) bool {
		return filepath.Base(argv[0]) == "containerd" && slices.Contains(argv, config)
	}) {
		if cm, err := benchkit.ProcessMemory(pid); err == nil {
			b.report.Add("containerd RSS, "+state, cm.String())
		}
	}
	shims := benchkit.FindProcesses(func(argv []string) bool {
		return strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, ctrdDir) })
	})
	if len(shims) > 0 {
		var total benchkit.Memory
		for _, pid := range shims {
			if sm, err := benchkit.ProcessMemory(pid); err == nil {
				total.RSS += sm.RSS
				total.Anon += sm.Anon
				total.File += sm.File
			}
		}
		// The shims' file-backed pages are one executable's, shared, but
		// VmRSS counts them in every process.
		b.report.Add("containerd shims, "+state, fmt.Sprintf("%d shims: anon %s in all (file-backed, shared: %s per shim)",
			len(shims), benchkit.MiB(total.Anon), benchkit.MiB(total.File/int64(len(shims)))))
	}
	return m.RSS
}

func (b *bench) waitNodeReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n, err := b.client.CoreV1().Nodes().Get(ctx, b.node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready within %s (last error %v); see %s.log", b.node, limit, err, b.dataDir)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// pods creates the pods at the configured rate and times each to Running
// and to Ready as the benchmark's informer observes them.
func (b *bench) pods(ctx context.Context) error {
	tr := &tracker{sent: map[string]time.Time{}, running: map[string]time.Time{}, ready: map[string]time.Time{}}
	stop := make(chan struct{})
	defer close(stop)
	if err := tr.start(ctx, b.client, stop); err != nil {
		return err
	}
	interval := time.Duration(float64(time.Second) / b.opts.rate)
	var creates benchkit.Latencies
	var wg sync.WaitGroup
	errs := make(chan error, b.opts.pods)
	tick := time.NewTicker(interval)
	began := time.Now()
	for i := range b.opts.pods {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := testPod(fmt.Sprintf("web-%d", i), b.opts.noToken)
			t0 := time.Now()
			tr.sentAt(p.Name, t0)
			if _, err := b.client.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				errs <- fmt.Errorf("create %s: %w", p.Name, err)
				return
			}
			creates.Add(time.Since(t0))
		}()
	}
	tick.Stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("  %d pods created in %s (load %s)\n", b.opts.pods, time.Since(began).Round(time.Millisecond), benchkit.LoadAvg())
	waitErr := tr.waitReady(ctx, b.opts.pods, 3*time.Minute)

	running, ready := tr.latencies()
	rs, ys := benchkit.Summarize(running), benchkit.Summarize(ready)
	b.report.Add("create request latency", creates.Summary().String())
	b.report.AddTarget("create → Running, p50", fmt.Sprintf("%s (n=%d)", benchkit.Ms(rs.P50), rs.N), "< 0.5 s", benchkit.Verdict(rs.N == b.opts.pods && rs.P50 < 500*time.Millisecond))
	b.report.AddTarget("create → Running, p99", fmt.Sprintf("%s (max %s)", benchkit.Ms(rs.P99), benchkit.Ms(rs.Max)), "< 1.5 s", benchkit.Verdict(rs.N == b.opts.pods && rs.P99 < 1500*time.Millisecond))
	b.report.Add("create → Ready (probe every 1 s)", ys.String())
	return waitErr
}

// probeFailures records the kubelet's Unhealthy events: readiness probes
// that failed before a pod became Ready.
func (b *bench) probeFailures(ctx context.Context) {
	list, err := b.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
	if err != nil {
		return
	}
	var n int32
	pods := map[string]bool{}
	example := ""
	for _, e := range list.Items {
		n += max(e.Count, 1)
		pods[e.InvolvedObject.Name] = true
		if example == "" {
			example = e.Message
		}
	}
	value := fmt.Sprintf("%d failed probes on %d pods", n, len(pods))
	if example != "" {
		value += fmt.Sprintf(" (e.g. %q)", example)
	}
	b.report.Add("readiness probe failures (Unhealthy events)", value)
}

// deletePods deletes the namespace and waits until it is gone.
func (b *bench) deletePods(ctx context.Context) error {
	began := time.Now()
	if err := b.client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{}); err != nil {
		return err
	}
	for time.Since(began) < 5*time.Minute {
		if _, err := b.client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			b.report.Add(fmt.Sprintf("delete namespace → %d pods gone", b.opts.pods), benchkit.Ms(time.Since(began)))
			return nil
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("namespace %s not gone after 5 minutes", namespace)
}

func testPod(name string, noToken bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "podstart"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           "localhost/skiff/testhost:latest",
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"netexec"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	if noToken {
		p.Spec.AutomountServiceAccountToken = new(false)
	}
	return p
}

// tracker notes when each pod's create was sent and when the informer
// first saw it Running and Ready.
type tracker struct {
	mu      sync.Mutex // guards the following
	sent    map[string]time.Time
	running map[string]time.Time
	ready   map[string]time.Time
}

func (t *tracker) start(ctx context.Context, c kubernetes.Interface, stop chan struct{}) error {
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(namespace))
	inf := f.Core().V1().Pods().Informer()
	observe := func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			t.observe(p, time.Now())
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }}); err != nil {
		return err
	}
	f.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return errors.New("pod informer not synced")
	}
	return nil
}

func (t *tracker) sentAt(name string, at time.Time) {
	t.mu.Lock()
	t.sent[name] = at
	t.mu.Unlock()
}

func (t *tracker) observe(p *corev1.Pod, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.running[p.Name]; !ok && p.Status.Phase == corev1.PodRunning {
		t.running[p.Name] = now
	}
	if _, ok := t.ready[p.Name]; !ok {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				t.ready[p.Name] = now
			}
		}
	}
}

// latencies are create sent → Running and → Ready, for the pods that got there.
func (t *tracker) latencies() (running, ready []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, sent := range t.sent {
		if at, ok := t.running[name]; ok {
			running = append(running, at.Sub(sent))
		}
		if at, ok := t.ready[name]; ok {
			ready = append(ready, at.Sub(sent))
		}
	}
	return running, ready
}

func (t *tracker) waitReady(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		t.mu.Lock()
		r, y := len(t.running), len(t.ready)
		t.mu.Unlock()
		if y >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the last create and %s: %d of %d pods Running, %d Ready", limit, r, n, y)
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool { return benchkit.Sleep(ctx, d) }
