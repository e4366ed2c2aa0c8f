package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// cpu takes both agents' CPU time (utime+stime) over fixed-rate runs of
// HTTP/1.1 requests from skiff-n1's client to skiff-n2's server, mesh-off
// then mesh-on, o.rounds times. What the mesh costs is the difference per
// 1,000 requests: the source proxy's on skiff-n1, the destination's on
// skiff-n2. Everything else the agents do in a run (the kubelet serving
// kubectl exec, housekeeping) is in both figures and cancels out, noise
// aside.
func cpu(ctx context.Context, c *cluster, o options, w *workload, report *benchkit.Report) error {
	requests := int(math.Round(float64(o.cpuRate) * o.cpuDuration.Seconds()))
	fmt.Printf("\n## CPU: %d requests at %d/s, %d workers, pod IP across nodes, HTTP/1.1; agents' CPU time\n", requests, o.cpuRate, o.cpuConcurrency)
	var pids [3]int
	for i := 1; i <= 2; i++ {
		pid, err := c.agentPID(i)
		if err != nil {
			return err
		}
		pids[i] = pid
	}
	t := targets(w)[0]
	// used[ns][i] is node i's agent CPU seconds over all of ns's runs.
	used := map[string]*[3]float64{nsOff: {}, nsOn: {}}
	sent := map[string]int{}
	for round := 1; round <= o.rounds; round++ {
		for _, ns := range []string{nsOff, nsOn} {
			var before [3]float64
			for i := 1; i <= 2; i++ {
				before[i], _ = benchkit.CPUSeconds(pids[i])
			}
			res, err := httpLoad(ctx, c, ns, append(t.loadArgs(ns, protoHTTP1),
				"--requests", strconv.Itoa(requests), "--rate", strconv.Itoa(o.cpuRate), "--concurrency", strconv.Itoa(o.cpuConcurrency))...)
			if err != nil {
				return err
			}
			var d [3]float64
			for i := 1; i <= 2; i++ {
				after, err := benchkit.CPUSeconds(pids[i])
				if err != nil {
					return fmt.Errorf("agent of %s: %w", nodeName(i), err)
				}
				d[i] = after - before[i]
				used[ns][i] += d[i]
			}
			sent[ns] += res.Requests
			fmt.Printf("  round %d  %-8s %.0f req/s (p50 %s)  agent CPU: %s %.0f ms, %s %.0f ms\n", round, ns, res.RPS, us(res.P50),
				nodeName(1), d[1]*1000, nodeName(2), d[2]*1000)
			if res.RPS < 0.95*float64(o.cpuRate) {
				fmt.Printf("  warning: %.0f req/s, short of the %d asked: the figures compare unequal loads\n", res.RPS, o.cpuRate)
			}
		}
	}
	// perK is node i's agent CPU milliseconds per 1,000 requests in ns.
	perK := func(ns string, i int) float64 { return used[ns][i] * 1000 / (float64(sent[ns]) / 1000) }
	for _, ns := range []string{nsOff, nsOn} {
		report.Add(fmt.Sprintf("agent CPU per 1,000 requests at %d/s, %s (%s, %s)", o.cpuRate, ns, nodeName(1), nodeName(2)),
			fmt.Sprintf("%.0f ms, %.0f ms", perK(ns, 1), perK(ns, 2)))
	}
	src, dst := perK(nsOn, 1)-perK(nsOff, 1), perK(nsOn, 2)-perK(nsOff, 2)
	report.Add("mesh CPU per 1,000 requests (on - off): source proxy + destination proxy",
		fmt.Sprintf("%.0f + %.0f = %.0f CPU-ms (%.1f%% of a core at 1,000 requests/s)", src, dst, src+dst, (src+dst)/10))
	return nil
}

// memory reads skiff-n1's agent memory with the latency pods only, with
// o.pods more pause pods in namespace mesh-scale not enrolled, and with
// them enrolled: the last difference is what the mesh holds for them.
func memory(ctx context.Context, c *cluster, o options, report *benchkit.Report) error {
	const ns = "mesh-scale"
	fmt.Printf("\n## memory: skiff-n1's agent with %d pause pods, before and after they are enrolled\n", o.pods)
	pid, err := c.agentPID(1)
	if err != nil {
		return err
	}
	base, err := readMemory(ctx, pid, o.settle)
	if err != nil {
		return err
	}
	fmt.Printf("  latency pods only: %s\n", base)
	if err := benchkit.CreateNamespace(ctx, c.client, ns); err != nil {
		return err
	}
	labels := map[string]string{"app": "idle"}
	_, err = c.client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "idle"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(o.pods)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec(nodeName(1), "pause"),
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create deployment %s/idle: %w", ns, err)
	}
	started := time.Now()
	if err := waitPods(ctx, c, ns, o.pods, corev1.PodReady, 15*time.Minute); err != nil {
		return err
	}
	fmt.Printf("  %d pods ready in %s\n", o.pods, time.Since(started).Round(time.Second))
	unenrolled, err := readMemory(ctx, pid, o.settle)
	if err != nil {
		return err
	}
	fmt.Printf("  %d pods, not enrolled: %s\n", o.pods, unenrolled)

	if err := setNamespaceLabel(ctx, c.client, ns, meshLabel, "true"); err != nil {
		return err
	}
	started = time.Now()
	if err := waitPods(ctx, c, ns, o.pods, identityCondition, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(started)
	enrolled, err := readMemory(ctx, pid, o.settle)
	if err != nil {
		return err
	}
	fmt.Printf("  %d pods, enrolled: %s\n", o.pods, enrolled)

	report.Add(fmt.Sprintf("namespace of %d running pods labelled → every identity condition True", o.pods), benchkit.Ms(took))
	report.Add(fmt.Sprintf("skiff-n1 agent RSS: latency pods only / +%d pods / enrolled", o.pods),
		fmt.Sprintf("%s / %s / %s", benchkit.MiB(base.rss), benchkit.MiB(unenrolled.rss), benchkit.MiB(enrolled.rss)))
	delta := enrolled.rss - unenrolled.rss
	target, verdict := "", ""
	if o.pods == 100 { // the figure
		target, verdict = "node proxy < 50 MB at 100 pods", benchkit.Verdict(delta < 50e6)
	}
	report.AddTarget(fmt.Sprintf("skiff-n1 agent RSS growth from enrolling %d pods", o.pods),
		fmt.Sprintf("%+.1f MB (%+.1f MB for the kubelet etc. to run them unenrolled)", float64(delta)/1e6, float64(unenrolled.rss-base.rss)/1e6),
		target, verdict)
	if enrolled.heap > 0 && unenrolled.heap > 0 {
		report.Add(fmt.Sprintf("skiff-n1 agent Go heap in use (whole process): +%d pods / enrolled", o.pods),
			fmt.Sprintf("%s / %s (%+.1f MB)", benchkit.MiB(unenrolled.heap), benchkit.MiB(enrolled.heap), float64(enrolled.heap-unenrolled.heap)/1e6))
	}
	if enrolled.meshHeap {
		report.Add("mesh proxy Go heap", "see go_memstats on :15020/metrics")
	} else {
		report.Add("mesh proxy Go heap", "not exposed: its /metrics (:15020) has no go_memstats, so the proxy's share is the RSS growth above")
	}
	if enrolled.enrolled > 0 {
		report.Add("skiff_mesh_enrolled_pods on skiff-n1 at the end", strconv.FormatFloat(enrolled.enrolled, 'f', 0, 64))
	}
	return nil
}

// agentMemory is one reading of skiff-n1's agent.
type agentMemory struct {
	rss, heap int64   // resident set (median of 5 readings), Go heap in use (0: unknown)
	enrolled  float64 // skiff_mesh_enrolled_pods
	meshHeap  bool    // the mesh proxy's own metrics carry go_memstats
}

func (m agentMemory) String() string {
	s := "RSS " + benchkit.MiB(m.rss)
	if m.heap > 0 {
		s += ", Go heap in use " + benchkit.MiB(m.heap)
	}
	return s + fmt.Sprintf(", %.0f pods enrolled", m.enrolled)
}

// readMemory waits settle, then reads pid's RSS five times a second apart
// (the median), the agent's Go heap from kube-proxy's metrics (it runs in
// the agent, whose Go runtime metrics it exports) and the mesh proxy's.
func readMemory(ctx context.Context, pid int, settle time.Duration) (agentMemory, error) {
	var m agentMemory
	if !benchkit.Sleep(ctx, settle) {
		return m, ctx.Err()
	}
	var rss []int64
	for i := range 5 {
		if i > 0 && !benchkit.Sleep(ctx, time.Second) {
			return m, ctx.Err()
		}
		pm, err := benchkit.ProcessMemory(pid)
		if err != nil {
			return m, fmt.Errorf("agent of %s: %w", nodeName(1), err)
		}
		rss = append(rss, pm.RSS)
	}
	slices.Sort(rss)
	m.rss = rss[len(rss)/2]
	if s, err := scrapeInNode(ctx, 1, "http://127.0.0.1:10249/metrics"); err == nil {
		m.heap = int64(s.Sum("go_memstats_heap_inuse_bytes"))
	} else {
		fmt.Println("  (no Go heap figure:", err, ")")
	}
	mesh, err := meshMetrics(ctx, 1)
	if err != nil {
		return m, fmt.Errorf("mesh metrics of %s: %w", nodeName(1), err)
	}
	m.enrolled = mesh.Sum("skiff_mesh_enrolled_pods")
	_, m.meshHeap = mesh["go_memstats_heap_inuse_bytes"]
	return m, nil
}

// waitPods waits until n pods of ns have condition cond True, printing
// progress every 15 s.
func waitPods(ctx context.Context, c *cluster, ns string, n int, cond corev1.PodConditionType, limit time.Duration) error {
	last := time.Now()
	return poll(ctx, limit, fmt.Sprintf("%d pods of %s with %s", n, ns, cond), func() (bool, error) {
		list, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ok := 0
		for i := range list.Items {
			if hasCondition(&list.Items[i], cond) {
				ok++
			}
		}
		if time.Since(last) > 15*time.Second {
			fmt.Printf("  %d of %d pods with %s\n", ok, n, cond)
			last = time.Now()
		}
		if ok < n {
			return false, fmt.Errorf("%d of %d", ok, n)
		}
		return true, nil
	})
}
