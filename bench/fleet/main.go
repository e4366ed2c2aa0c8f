// Command fleet measures the fleet (docs/fleet.md) on this machine: one
// upstream skiff (--fleet-upstream) and N downstream skiff servers, each
// with one simulated node, joined with `skiff fleet join`:
//
//   - propagation latency: a ConfigMap created on the upstream until it is
//     present in every downstream (p50, p99), at each cluster count;
//
//   - status latency: a Deployment's copy in one downstream losing its
//     ready replica (its pod deleted) until the upstream's aggregated
//     readyReplicas shows it;
//
//   - the upstream's memory per registered cluster;
//
//   - convergence after a partition: one cluster holding 1,000 propagated
//     objects is frozen (SIGSTOP of its server, agent included), all 1,000
//     change on the upstream, and the time from its thaw until its copies
//     all carry the change.
//
//     make build
//     go run ./bench/fleet -skiff bin/skiff -clusters 3,20
//
// Everything it starts is stopped before it exits; data dirs go under
// -dir (removed unless -keep). Figures are in docs/perf.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

type options struct {
	skiff    string
	clusters []int
	samples  int
	objects  int
	dir      string
	downDir  string
	keep     bool
	verbose  bool
}

// lean are the downstreams' and upstream's flags: many servers share this
// machine, and the parts skipped would contend for the same host ports.
var lean = []string{"--disable-agent", "--disable-dns", "--disable-metrics-server", "--disable-dashboard",
	"--disable-gateway-api", "--cluster-cidr", "10.128.0.0/9"}

type downstream struct {
	name   string
	srv    *benchkit.Server
	sim    *benchkit.Sim
	client *kubernetes.Clientset
}

func main() {
	var o options
	var counts string
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "the skiff binary")
	flag.StringVar(&counts, "clusters", "3,20", "downstream cluster counts to measure at, ascending")
	flag.IntVar(&o.samples, "samples", 50, "propagation samples per cluster count")
	flag.IntVar(&o.objects, "objects", 1000, "objects on the partitioned cluster")
	flag.StringVar(&o.dir, "dir", "/tmp/bench-fleet", "where the upstream's data dir goes")
	flag.StringVar(&o.downDir, "downstream-dir", "/dev/shm/bench-fleet", "where the downstreams' data dirs go (default tmpfs: on this one machine their etcds' fsyncs would otherwise queue behind the upstream's on one disk, as they would not on machines of their own)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs")
	flag.BoolVar(&o.verbose, "v", false, "print each propagation sample: its time, and how long until the last Work was written on the upstream")
	flag.Parse()
	for _, s := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-clusters %q: want counts such as 3,20\n", counts)
			os.Exit(2)
		}
		o.clusters = append(o.clusters, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fleet bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	for _, dir := range []string{o.dir, o.downDir} {
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	benchkit.PrintHeader(os.Stdout, "fleet: propagation, status, memory per cluster, partition", o.skiff)
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)

	up, err := benchkit.StartServer(benchkit.ServerOptions{Binary: o.skiff, DataDir: filepath.Join(o.dir, "upstream"), Args: append([]string{"--fleet-upstream"}, lean...)})
	if err != nil {
		return err
	}
	defer up.Stop()
	if _, err := up.WaitReady(ctx, 3*time.Minute); err != nil {
		return err
	}
	rc, err := benchkit.RestConfig(up.Kubeconfig())
	if err != nil {
		return err
	}
	upClient, err := benchkit.Clientset(rc)
	if err != nil {
		return err
	}
	upDyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := benchkit.CreateNamespace(ctx, upClient, "bench"); err != nil {
		return err
	}
	var downs []*downstream
	defer func() {
		for _, d := range downs {
			if d.sim != nil {
				d.sim.Stop()
			}
			_ = d.srv.Stop()
		}
	}()
	settle := func() int64 {
		benchkit.Sleep(ctx, 20*time.Second)
		rss, _ := up.RSS()
		return rss
	}
	base := settle()
	fmt.Printf("upstream RSS with no cluster: %d MiB\n", base>>20)
	report := &benchkit.Report{}

	for _, n := range o.clusters {
		for len(downs) < n {
			d, err := join(ctx, o, up, len(downs))
			if d != nil {
				downs = append(downs, d)
			}
			if err != nil {
				return err
			}
		}
		if err := waitReady(ctx, upDyn, n); err != nil {
			return err
		}
		rss := settle()
		perCluster := float64(rss-base) / float64(n) / (1 << 20)
		fmt.Printf("%d clusters: upstream RSS %d MiB (%.1f MiB per cluster)\n", n, rss>>20, perCluster)
		report.Add(fmt.Sprintf("upstream memory per cluster, %d clusters", n), fmt.Sprintf("%.1f MiB (RSS %d MiB, %d MiB with none)", perCluster, rss>>20, base>>20))

		prop, err := propagation(ctx, o, upClient, upDyn, downs)
		if err != nil {
			return err
		}
		report.AddTarget(fmt.Sprintf("propagation, %d clusters (create on upstream → in every downstream)", n),
			fmt.Sprintf("p50 %s, p99 %s (n=%d)", ms(prop.P50), ms(prop.P99), prop.N), "p99 < 500 ms at 20", benchkit.Verdict(n != 20 || prop.P99 < 500*time.Millisecond))
		st, err := statusLatency(ctx, upClient, upDyn, downs)
		if err != nil {
			return err
		}
		report.Add(fmt.Sprintf("status, %d clusters (downstream readyReplicas drop → upstream aggregate)", n),
			fmt.Sprintf("p50 %s, p99 %s (n=%d)", ms(st.P50), ms(st.P99), st.N))
		// The next count's memory is read with none of this round's
		// objects left.
		if err := cleanup(ctx, upClient, upDyn, downs); err != nil {
			return err
		}
	}

	took, err := partition(ctx, o, upClient, upDyn, downs[0])
	if err != nil {
		return err
	}
	report.Add(fmt.Sprintf("partition of one cluster holding %d objects, all changed meanwhile: thaw → converged", o.objects), ms(took))
	fmt.Println()
	report.Print(os.Stdout)
	fmt.Printf("load average during the run: %s\n", load.Stop())
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// join starts downstream i with one simulated node and joins it.
func join(ctx context.Context, o options, up *benchkit.Server, i int) (*downstream, error) {
	name := fmt.Sprintf("c%02d", i)
	srv, err := benchkit.StartServer(benchkit.ServerOptions{Binary: o.skiff, DataDir: filepath.Join(o.downDir, name), Args: lean})
	if err != nil {
		return nil, err
	}
	d := &downstream{name: name, srv: srv}
	if _, err := srv.WaitReady(ctx, 3*time.Minute); err != nil {
		return d, err
	}
	rc, err := benchkit.RestConfig(srv.Kubeconfig())
	if err != nil {
		return d, err
	}
	if d.client, err = benchkit.Clientset(rc); err != nil {
		return d, err
	}
	if d.sim, err = benchkit.StartSim(benchkit.SimOptions{Binary: o.skiff, Kubeconfig: srv.Kubeconfig(), Nodes: 1, Prefix: name + "-", QPS: 20, Log: filepath.Join(o.dir, name+"-sim.log"),
		// A replacement pod runs after 1 s, so that the dip in ready
		// replicas the status latency is timed on lasts that long.
		StartDelay: time.Second}); err != nil {
		return d, err
	}
	token, err := exec.CommandContext(ctx, o.skiff, "fleet", "token", "create", name, "--label", "bench=yes", "--kubeconfig", up.Kubeconfig()).Output()
	if err != nil {
		return d, fmt.Errorf("token for %s: %w", name, err)
	}
	tokenFile := filepath.Join(o.dir, name+".token")
	if err := os.WriteFile(tokenFile, token, 0o600); err != nil {
		return d, err
	}
	if out, err := exec.CommandContext(ctx, o.skiff, "fleet", "join", "--upstream", up.URL, "--token-file", tokenFile, "--name", name, "--kubeconfig", srv.Kubeconfig()).CombinedOutput(); err != nil {
		return d, fmt.Errorf("join %s: %v\n%s", name, err, out)
	}
	fmt.Printf("joined %s (RSS %d MiB)\n", name, func() int64 { r, _ := srv.RSS(); return r >> 20 }())
	return d, nil
}

// waitReady waits until n clusters are Ready.
func waitReady(ctx context.Context, up dynamic.Interface, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := up.Resource(v1alpha1.Clusters).List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, c := range list.Items {
				conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
				for _, x := range conds {
					if m := x.(map[string]any); m["type"] == "Ready" && m["status"] == "True" {
						ready++
					}
				}
			}
		}
		if ready >= n {
			return nil
		}
		if !benchkit.Sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("fewer than %d clusters Ready after 3m", n)
}

func apply(ctx context.Context, up dynamic.Interface, manifest string) error {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		return err
	}
	gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
	res := strings.ToLower(u.GetKind()) + "s"
	if strings.HasSuffix(u.GetKind(), "Policy") {
		res = strings.ToLower(strings.TrimSuffix(u.GetKind(), "Policy")) + "policies"
	}
	var ri dynamic.ResourceInterface = up.Resource(gv.WithResource(res))
	if ns := u.GetNamespace(); ns != "" {
		ri = up.Resource(gv.WithResource(res)).Namespace(ns)
	}
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		return err
	}
	_, err = ri.Patch(ctx, u.GetName(), "application/apply-patch+yaml", b, metav1.PatchOptions{FieldManager: "bench", Force: new(true)})
	return err
}

// arrivals watches a kind in namespace bench of every downstream and
// records when each named object first appears (or first matches).
type arrivals struct {
	mu   sync.Mutex
	seen map[string]map[string]time.Time // name → cluster → time
}

func (a *arrivals) record(name, cluster string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[name] == nil {
		a.seen[name] = map[string]time.Time{}
	}
	if _, ok := a.seen[name][cluster]; !ok {
		a.seen[name][cluster] = at
	}
}

func (a *arrivals) all(name string, n int) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen[name]) < n {
		return time.Time{}, false
	}
	var last time.Time
	for _, t := range a.seen[name] {
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

func propagation(ctx context.Context, o options, upClient kubernetes.Interface, upDyn dynamic.Interface, downs []*downstream) (benchkit.Summary, error) {
	if err := apply(ctx, upDyn, `
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: prop, namespace: bench}
spec:
  resourceSelectors: [{apiVersion: v1, kind: ConfigMap, labelSelector: {matchLabels: {bench: prop}}}]
  placement: {clusterAffinity: {labelSelector: {matchLabels: {bench: "yes"}}}}
`); err != nil {
		return benchkit.Summary{}, err
	}
	a := &arrivals{seen: map[string]map[string]time.Time{}}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, d := range downs {
		w, err := d.client.CoreV1().ConfigMaps("bench").Watch(wctx, metav1.ListOptions{LabelSelector: "bench=prop"})
		if err != nil {
			return benchkit.Summary{}, err
		}
		go func(d *downstream) {
			for ev := range w.ResultChan() {
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					a.record(cm.Name, d.name, time.Now())
				}
			}
		}(d)
	}
	// The Works the upstream writes for each sample, one per cluster,
	// split the time in two: the upstream's part (create → its last Work
	// written) and the agents' (→ the last downstream copy).
	works := &arrivals{seen: map[string]map[string]time.Time{}}
	ww, err := upDyn.Resource(v1alpha1.Works).Watch(wctx, metav1.ListOptions{})
	if err != nil {
		return benchkit.Summary{}, err
	}
	go func() {
		for ev := range ww.ResultChan() {
			if w, ok := ev.Object.(*unstructured.Unstructured); ok && ev.Type == watch.Added {
				if name, _, ok := strings.Cut(w.GetName(), "-configmap-"); ok {
					works.record(name, w.GetNamespace(), time.Now())
				}
			}
		}
	}()
	var lat, upPart benchkit.Latencies
	for i := range o.samples {
		name := fmt.Sprintf("p%d-%d", len(downs), i)
		t0 := time.Now()
		if _, err := upClient.CoreV1().ConfigMaps("bench").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "prop"}},
			Data:       map[string]string{"i": strconv.Itoa(i)},
		}, metav1.CreateOptions{}); err != nil {
			return benchkit.Summary{}, err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if at, ok := a.all(name, len(downs)); ok {
				lat.Add(at.Sub(t0))
				// The bench's own watch of the Works can trail the
				// agents' watches: then this sample has no split.
				w, ok := works.all(name, len(downs))
				if ok {
					upPart.Add(w.Sub(t0))
				}
				if o.verbose {
					split := "the Works' watch behind"
					if ok {
						split = "the last Work after " + ms(w.Sub(t0))
					}
					fmt.Printf("sample %s at %s: %s (%s)\n", name, t0.Format("15:04:05.000"), ms(at.Sub(t0)), split)
				}
				break
			}
			if time.Now().After(deadline) {
				return benchkit.Summary{}, fmt.Errorf("%s not in every downstream after 30s", name)
			}
			time.Sleep(2 * time.Millisecond)
		}
		benchkit.Sleep(ctx, 100*time.Millisecond)
	}
	s := lat.Summary()
	fmt.Printf("%d clusters: propagation %s\n", len(downs), s)
	fmt.Printf("%d clusters: of which create → the last Work written on the upstream %s\n", len(downs), upPart.Summary())
	return s, nil
}

// statusLatency: the Deployment "web" (1 replica, duplicated to every
// cluster) runs on each cluster's simulated node; for each cluster in
// turn its pod is deleted, and the time from the downstream's
// readyReplicas 0 to the upstream's aggregate showing one fewer is taken.
func statusLatency(ctx context.Context, upClient kubernetes.Interface, upDyn dynamic.Interface, downs []*downstream) (benchkit.Summary, error) {
	if err := apply(ctx, upDyn, `
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: bench}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement: {clusterAffinity: {labelSelector: {matchLabels: {bench: "yes"}}}}
`); err != nil {
		return benchkit.Summary{}, err
	}
	if err := apply(ctx, upDyn, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: bench}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.example.com/web:1}]}
`); err != nil {
		return benchkit.Summary{}, err
	}
	n := int32(len(downs))
	upReady := func() int32 {
		d, err := upClient.AppsV1().Deployments("bench").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return -1
		}
		return d.Status.ReadyReplicas
	}
	if err := poll(ctx, 3*time.Minute, func() bool { return upReady() == n }); err != nil {
		return benchkit.Summary{}, fmt.Errorf("upstream web never %d ready (%d): %w", n, upReady(), err)
	}
	var lat benchkit.Latencies
	// At least 20 samples: a few clusters are taken in turn more than once.
	for i := 0; i < max(20, len(downs)); i++ {
		d := downs[i%len(downs)]
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		upW, err := upClient.AppsV1().Deployments("bench").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=web"})
		if err != nil {
			cancel()
			return benchkit.Summary{}, err
		}
		downW, err := d.client.AppsV1().Deployments("bench").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=web"})
		if err != nil {
			cancel()
			return benchkit.Summary{}, err
		}
		pods, err := d.client.CoreV1().Pods("bench").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			cancel()
			return benchkit.Summary{}, fmt.Errorf("%s: no web pod: %v", d.name, err)
		}
		var tDown, tUp time.Time
		var wg sync.WaitGroup
		wg.Go(func() {
			for ev := range downW.ResultChan() {
				if dep, ok := ev.Object.(*appsv1.Deployment); ok && dep.Status.ReadyReplicas == 0 {
					tDown = time.Now()
					return
				}
			}
		})
		wg.Go(func() {
			for ev := range upW.ResultChan() {
				if dep, ok := ev.Object.(*appsv1.Deployment); ok && dep.Status.ReadyReplicas == n-1 {
					tUp = time.Now()
					return
				}
			}
		})
		err = d.client.CoreV1().Pods("bench").Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
		wg.Wait()
		cancel()
		if err != nil {
			return benchkit.Summary{}, err
		}
		if tDown.IsZero() || tUp.IsZero() {
			fmt.Printf("%s: the drop was not seen on both sides (down %v, up %v); skipped\n", d.name, !tDown.IsZero(), !tUp.IsZero())
		} else {
			lat.Add(max(0, tUp.Sub(tDown)))
		}
		if err := poll(ctx, time.Minute, func() bool { return upReady() == n }); err != nil {
			return benchkit.Summary{}, fmt.Errorf("upstream web not back to %d ready: %w", n, err)
		}
	}
	s := lat.Summary()
	fmt.Printf("%d clusters: status %s\n", len(downs), s)
	return s, nil
}

// cleanup deletes the round's objects and policies on the upstream and
// waits until the downstreams' copies are gone.
func cleanup(ctx context.Context, upClient kubernetes.Interface, upDyn dynamic.Interface, downs []*downstream) error {
	if err := upDyn.Resource(v1alpha1.PropagationPolicies).Namespace("bench").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	if err := upClient.CoreV1().ConfigMaps("bench").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "bench"}); err != nil {
		return err
	}
	if err := upClient.AppsV1().Deployments("bench").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return poll(ctx, 5*time.Minute, func() bool {
		for _, d := range downs {
			cms, err := d.client.CoreV1().ConfigMaps("bench").List(ctx, metav1.ListOptions{LabelSelector: "bench"})
			if err != nil || len(cms.Items) > 0 {
				return false
			}
			deps, err := d.client.AppsV1().Deployments("bench").List(ctx, metav1.ListOptions{})
			if err != nil || len(deps.Items) > 0 {
				return false
			}
		}
		return true
	})
}

func poll(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", d)
		}
		if !benchkit.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// partition: objects ConfigMaps on downstream d only; d is frozen, each
// changes on the upstream, d thaws; how long until d has every change.
func partition(ctx context.Context, o options, upClient kubernetes.Interface, upDyn dynamic.Interface, d *downstream) (time.Duration, error) {
	if err := apply(ctx, upDyn, fmt.Sprintf(`
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: part, namespace: bench}
spec:
  resourceSelectors: [{apiVersion: v1, kind: ConfigMap, labelSelector: {matchLabels: {bench: part}}}]
  placement: {clusterAffinity: {clusterNames: [%s]}}
`, d.name)); err != nil {
		return 0, err
	}
	for i := range o.objects {
		_, err := upClient.CoreV1().ConfigMaps("bench").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("part-%04d", i), Labels: map[string]string{"bench": "part"}},
			Data:       map[string]string{"v": "1"},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, err
		}
	}
	count := func(v string) int {
		list, err := d.client.CoreV1().ConfigMaps("bench").List(ctx, metav1.ListOptions{LabelSelector: "bench=part"})
		if err != nil {
			return -1
		}
		n := 0
		for _, cm := range list.Items {
			if cm.Data["v"] == v {
				n++
			}
		}
		return n
	}
	began := time.Now()
	if err := poll(ctx, 10*time.Minute, func() bool { return count("1") == o.objects }); err != nil {
		return 0, fmt.Errorf("the %d objects never all reached %s (%d did): %w", o.objects, d.name, count("1"), err)
	}
	fmt.Printf("%d objects placed on %s in %s\n", o.objects, d.name, time.Since(began).Round(time.Millisecond))
	if err := syscall.Kill(-d.srv.PID(), syscall.SIGSTOP); err != nil {
		return 0, err
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = syscall.Kill(-d.srv.PID(), syscall.SIGCONT)
		}
	}()
	for i := range o.objects {
		name := fmt.Sprintf("part-%04d", i)
		if _, err := upClient.CoreV1().ConfigMaps("bench").Patch(ctx, name, "application/merge-patch+json", []byte(`{"data":{"v":"2"}}`), metav1.PatchOptions{}); err != nil {
			return 0, err
		}
	}
	benchkit.Sleep(ctx, 15*time.Second)
	t0 := time.Now()
	if err := syscall.Kill(-d.srv.PID(), syscall.SIGCONT); err != nil {
		return 0, err
	}
	thawed = true
	if err := poll(ctx, 10*time.Minute, func() bool { return count("2") == o.objects }); err != nil {
		return 0, fmt.Errorf("%s never converged (%d of %d changed): %w", d.name, count("2"), o.objects, err)
	}
	took := time.Since(t0)
	if n := count(""); n != 0 {
		return 0, fmt.Errorf("%d copies lost their data", n)
	}
	list, err := d.client.CoreV1().ConfigMaps("bench").List(ctx, metav1.ListOptions{LabelSelector: "bench=part"})
	if err != nil || len(list.Items) != o.objects {
		return 0, fmt.Errorf("%s holds %d objects after converging, want %d (%v)", d.name, len(list.Items), o.objects, err)
	}
	fmt.Printf("partition: converged %s after the thaw\n", took.Round(time.Millisecond))
	return took, nil
}
