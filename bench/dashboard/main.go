// Command dashboard measures the web dashboard at scale, in headless
// chromium driven through chromedp: with 1,000 simulated nodes and 30,000
// pods Running on them, the overview's first paint and time until its
// figures are complete, the pod list's first rows, the time from a change
// made through the API to the page showing it, the page's memory in the
// browser, and what 10 open dashboards cost the server.
//
//	make build
//	go run ./bench/dashboard -skiff bin/skiff            # 1,000 nodes, 30,000 pods
//	go run ./bench/dashboard -skiff bin/skiff -quick     # 100 nodes, 1,000 pods
//
// It starts `skiff server --disable-agent` on a free port and `skiff sim`
// (both stopped before it exits), creates the pods already bound to the
// simulated nodes (spread over 30 namespaces, so the scheduler's own pace
// does not set the set-up time), and logs in with the URL `skiff dashboard`
// prints. Figures and how to read them are in docs/perf.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const (
	simPrefix  = "sim-"
	namespaces = 30
	changes    = 10 // changes timed per kind
	dashboards = 10 // tabs open for the server-side cost
	costWindow = 60 * time.Second
)

type options struct {
	skiff  string
	nodes  int
	pods   int
	keep   bool
	simQPS int
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "a small run to check the program works: 100 nodes, 1,000 pods")
	timeout := flag.Duration("timeout", 60*time.Minute, "give up after this long")
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary to benchmark (built with `make build`, so with its dashboard)")
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated nodes")
	flag.IntVar(&o.pods, "pods", 30000, "pods, bound to the simulated nodes")
	flag.IntVar(&o.simQPS, "sim-qps", 2000, "API requests per second allowed to the simulated nodes")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and logs")
	flag.Parse()
	if *quick {
		o.nodes, o.pods = 100, 1000
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard bench: no chromium (scripts/deps.sh test installs it)")
		os.Exit(2)
	}
	root, err := os.MkdirTemp("", "skiff-bench-dashboard-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard bench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	b := &bench{opts: o, root: root, browser: browser, report: &benchkit.Report{}}
	benchkit.PrintHeader(os.Stdout, "skiff dashboard benchmark", o.skiff)
	fmt.Printf("scale:   %d simulated nodes, %d pods in %d namespaces\n\n", o.nodes, o.pods, namespaces)
	load := benchkit.StartLoadSampler(ctx, 10*time.Second)
	err = b.run(ctx)
	b.stop()
	cancel()
	stop()
	fmt.Println()
	b.report.Print(os.Stdout)
	fmt.Printf("\nload average (1 min) during the run: %s\n", load.Stop())
	if o.keep {
		fmt.Println("data and logs kept in", root)
	} else {
		_ = os.RemoveAll(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	opts    options
	root    string
	browser string
	report  *benchkit.Report

	server *benchkit.Server
	sim    *benchkit.Sim
	client kubernetes.Interface
	login  string // the login URL
	base   string // https://127.0.0.1:PORT/dashboard/
}

func (b *bench) run(ctx context.Context) error {
	if err := b.setUp(ctx); err != nil {
		return err
	}
	alloc, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(b.browser),
		chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), // the cluster's own CA
		chromedp.Flag("enable-precise-memory-info", true),
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(filepath.Join(b.root, "chromium")),
	)...)
	defer cancel()
	tab, closeTab := chromedp.NewContext(alloc)
	defer closeTab()
	if err := chromedp.Do(tab); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	fmt.Printf("\n## the page (load %s)\n", benchkit.LoadAvg())
	if err := b.firstVisit(tab); err != nil {
		return err
	}
	if err := b.changes(ctx, tab); err != nil {
		return err
	}
	// The measuring tab stays (it holds the browser) on a blank page.
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	fmt.Printf("\n## %d open dashboards (load %s)\n", dashboards, benchkit.LoadAvg())
	return b.serverCost(ctx, tab)
}

// setUp starts the server and the nodes, and creates the pods.
func (b *bench) setUp(ctx context.Context) error {
	var err error
	if b.server, _, b.client, err = benchkit.StartControlPlane(ctx, b.opts.skiff, filepath.Join(b.root, "server")); err != nil {
		return err
	}
	if b.sim, err = benchkit.StartSim(benchkit.SimOptions{
		Binary: b.opts.skiff, Kubeconfig: b.server.Kubeconfig(), Nodes: b.opts.nodes, Prefix: simPrefix,
		QPS: b.opts.simQPS, Log: filepath.Join(b.root, "sim.log"),
	}); err != nil {
		return err
	}
	if err := b.sim.WaitNodes(ctx, b.client, 10*time.Minute); err != nil {
		return err
	}
	fmt.Printf("%d nodes Ready\n", b.opts.nodes)
	began := time.Now()
	if err := b.createPods(ctx); err != nil {
		return err
	}
	if err := b.waitRunning(ctx, b.opts.pods, 15*time.Minute); err != nil {
		return err
	}
	fmt.Printf("%d pods Running after %s\n", b.opts.pods, time.Since(began).Round(time.Second))
	b.memory("server RSS holding the cluster")

	out, err := exec.CommandContext(ctx, b.opts.skiff, "dashboard", "--data-dir", b.server.DataDir).Output()
	if err != nil {
		return fmt.Errorf("skiff dashboard: %w", err)
	}
	b.login = strings.TrimSpace(string(out))
	b.base = b.login[:strings.Index(b.login, "#")]
	return nil
}

// createPods creates the pods bound to the nodes round robin, 20 at once.
func (b *bench) createPods(ctx context.Context) error {
	for i := range namespaces {
		if err := benchkit.CreateNamespace(ctx, b.client, fmt.Sprintf("bench-%d", i)); err != nil {
			return err
		}
	}
	work := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Namespace: fmt.Sprintf("bench-%d", i%namespaces), Labels: map[string]string{"app": "bench"}},
					Spec: corev1.PodSpec{
						NodeName:   fmt.Sprintf("%s%d", simPrefix, i%b.opts.nodes),
						Containers: []corev1.Container{{Name: "main", Image: "localhost/skiff/pause:latest"}},
					},
				}
				if _, err := b.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range b.opts.pods {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d pods not created, the first: %w", len(errs), errs[0])
	}
	return nil
}

// running is how many pods are Running, from the dashboard's own counts
// (the API does not count for a field selector).
func (b *bench) running(ctx context.Context) (int, error) {
	raw, err := b.client.CoreV1().RESTClient().Get().AbsPath("/dashboard/api/v1/pods/phases").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	var p struct{ Phases map[string]int }
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, err
	}
	return p.Phases["Running"], nil
}

func (b *bench) waitRunning(ctx context.Context, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n, err := b.running(ctx)
		if err == nil && n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d pods Running after %s (%v)", n, want, limit, err)
		}
		if !benchkit.Sleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

// waitJS polls a JavaScript condition every 10 ms until it holds, returning
// performance.now() in the page at that moment (ms since the page's
// navigation started).
func waitJS(tab context.Context, cond string, limit time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(tab, limit)
	defer cancel()
	expr := fmt.Sprintf(`(() => (%s) ? performance.now() : -1)()`, cond)
	for {
		at, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
		if err != nil {
			return 0, fmt.Errorf("waiting for %s: %w", cond, err)
		}
		if at >= 0 {
			return at, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func text(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent`, sel)
}

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }

// firstVisit loads the overview from the login URL, then the pod list.
func (b *bench) firstVisit(tab context.Context) error {
	if err := chromedp.Do(tab, chromedp.Navigate(b.login)); err != nil {
		return err
	}
	fcp, err := waitJS(tab, `performance.getEntriesByName('first-contentful-paint').length > 0`, time.Minute)
	if err != nil {
		return err
	}
	fcp, err = chromedp.Run(tab, chromedp.Evaluate[float64](`performance.getEntriesByName('first-contentful-paint')[0].startTime`))
	if err != nil {
		return err
	}
	b.report.AddTarget("overview: first contentful paint", ms(fcp), "< 1 s", benchkit.Verdict(fcp < 1000))
	ready := fmt.Sprintf(`%s.includes('%d / %d Ready') && %s === '%d'`, text(`[data-testid="nodes-ready"]`), b.opts.nodes, b.opts.nodes,
		text(`dd[data-phase="Running"]`), b.opts.pods)
	complete, err := waitJS(tab, ready, time.Minute)
	if err != nil {
		return err
	}
	b.report.Add(fmt.Sprintf("overview: figures complete (%d nodes Ready, %d pods Running)", b.opts.nodes, b.opts.pods), ms(complete))
	b.browserMemory(tab, "overview")

	// The pod list of every namespace, from the page (a route change).
	start, err := chromedp.Run(tab, chromedp.Evaluate[float64](`(() => { location.hash = '#/core/v1/pods'; return performance.now(); })()`))
	if err != nil {
		return err
	}
	rows, err := waitJS(tab, `document.querySelectorAll('table[data-resource="pods"] tbody tr[data-name]').length > 0`, time.Minute)
	if err != nil {
		return err
	}
	b.report.Add("pods of every namespace: first rows shown, from the overview", ms(rows-start))
	// And loaded afresh: the page opened on the pod list (by way of a
	// blank page: a URL differing only in its fragment would not load).
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank"), chromedp.Navigate(b.base+"#/core/v1/pods")); err != nil {
		return err
	}
	if rows, err = waitJS(tab, `document.querySelectorAll('table[data-resource="pods"] tbody tr[data-name]').length > 0`, time.Minute); err != nil {
		return err
	}
	fcp, _ = chromedp.Run(tab, chromedp.Evaluate[float64](`(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime`))
	b.report.AddTarget("pods of every namespace, page loaded afresh: first paint / first rows", ms(fcp)+" / "+ms(rows), "< 1 s", benchkit.Verdict(fcp < 1000))
	shown, err := chromedp.Run(tab, chromedp.Evaluate[float64](`document.querySelectorAll('table[data-resource="pods"] tbody tr[data-name]').length`))
	if err != nil {
		return err
	}
	status, _ := chromedp.Run(tab, chromedp.Evaluate[string](text(`.filters .count`)))
	b.report.Add("pods of every namespace: rows in the document (virtualised)", fmt.Sprintf("%.0f (%s)", shown, status))
	b.browserMemory(tab, "pod list of every namespace")
	return nil
}

// browserMemory records the page's JavaScript heap and the resident
// memory of the largest chromium renderer process (the page's; the only
// chromium running should be this program's).
func (b *bench) browserMemory(tab context.Context, page string) {
	heap, err := chromedp.Run(tab, chromedp.Evaluate[float64](`performance.memory.usedJSHeapSize`))
	if err != nil {
		b.report.Add(page+": browser memory", "unreadable: "+err.Error())
		return
	}
	var largest benchkit.Memory
	renderers := benchkit.FindProcesses(func(argv []string) bool {
		// Chromium rewrites its children's command lines as one string.
		line := strings.Join(argv, " ")
		return strings.Contains(line, "chrom") && strings.Contains(line, "--type=renderer")
	})
	for _, pid := range renderers {
		if m, err := benchkit.ProcessMemory(pid); err == nil && m.Anon > largest.Anon {
			largest = m
		}
	}
	// The page's own memory is its renderer's anonymous memory (what
	// Chrome's task manager calls its footprint, near enough); its RSS
	// adds the shared libraries and V8's snapshot every renderer maps.
	b.report.AddTarget(page+": JavaScript heap / its renderer's private (anonymous) memory / RSS",
		fmt.Sprintf("%s / %s / %s", benchkit.MiB(int64(heap)), benchkit.MiB(largest.Anon), benchkit.MiB(largest.RSS)),
		"< 200 MB", benchkit.Verdict(largest.Anon < 200e6))
}

// changes times changes made through the API until the page shows them:
// a Deployment scaled (its list row), and pods deleted from the list of
// every namespace's 30,000.
func (b *bench) changes(ctx context.Context, tab context.Context) error {
	ns := "bench-change"
	if err := benchkit.CreateNamespace(ctx, b.client, ns); err != nil {
		return err
	}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "localhost/skiff/pause:latest"}}},
			},
		},
	}
	if _, err := b.client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return err
	}
	row := fmt.Sprintf(`table[data-resource="deployments"] tr[data-name="web"][data-namespace=%q]`, ns)
	if err := chromedp.Do(tab, chromedp.Navigate(b.base+"#/apps/v1/deployments")); err != nil {
		return err
	}
	if _, err := waitJS(tab, text(row)+`.includes('/1')`, time.Minute); err != nil {
		return err
	}
	var scaled []time.Duration
	for i := 2; i < 2+changes; i++ {
		began := time.Now()
		if _, err := b.client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: int32(i)},
		}, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if _, err := waitJS(tab, fmt.Sprintf(`%s.includes('/%d')`, text(row), i), 30*time.Second); err != nil {
			return err
		}
		scaled = append(scaled, time.Since(began))
	}
	p50, worst := quantiles(scaled)
	b.report.AddTarget(fmt.Sprintf("a Deployment scaled through the API → its row shows it (%d changes)", changes),
		fmt.Sprintf("p50 %s, max %s", benchkit.Ms(p50), benchkit.Ms(worst)), "< 1 s", benchkit.Verdict(worst < time.Second))

	// Pods deleted, among the 30,000 the pod list follows.
	if err := chromedp.Do(tab, chromedp.Navigate(b.base+"#/core/v1/pods")); err != nil {
		return err
	}
	if _, err := waitJS(tab, `document.querySelectorAll('table[data-resource="pods"] tbody tr[data-name]').length > 0`, time.Minute); err != nil {
		return err
	}
	var deleted []time.Duration
	for i := range changes {
		// The rows are sorted by namespace and name: bench-0's first pods
		// are at the top of the list.
		name := fmt.Sprintf("pod-%05d", i*namespaces)
		sel := fmt.Sprintf(`table[data-resource="pods"] tr[data-name=%q][data-namespace="bench-0"]`, name)
		if _, err := waitJS(tab, fmt.Sprintf(`!!document.querySelector(%q)`, sel), 30*time.Second); err != nil {
			return err
		}
		began := time.Now()
		zero := int64(0)
		if err := b.client.CoreV1().Pods("bench-0").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			return err
		}
		if _, err := waitJS(tab, fmt.Sprintf(`!document.querySelector(%q)`, sel), 30*time.Second); err != nil {
			return err
		}
		deleted = append(deleted, time.Since(began))
	}
	p50, worst = quantiles(deleted)
	b.report.AddTarget(fmt.Sprintf("a pod deleted through the API → its row is gone, among %d (%d changes)", b.opts.pods, changes),
		fmt.Sprintf("p50 %s, max %s", benchkit.Ms(p50), benchkit.Ms(worst)), "< 1 s", benchkit.Verdict(worst < time.Second))
	return nil
}

func quantiles(d []time.Duration) (p50, worst time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// serverCost reads the server's CPU and memory over costWindow with no
// dashboard open, then with dashboards tabs (opened beside browser's, in
// the same chromium) on the pod list of every namespace.
func (b *bench) serverCost(ctx context.Context, browser context.Context) error {
	idle, err := b.window(ctx)
	if err != nil {
		return err
	}
	var tabs []context.CancelFunc
	defer func() {
		for _, c := range tabs {
			c()
		}
	}()
	for range dashboards {
		tab, cancel := chromedp.NewContext(browser)
		tabs = append(tabs, cancel)
		// Each tab logs in (the token is kept per tab), then opens the list.
		if err := chromedp.Do(tab, chromedp.Navigate(b.login)); err != nil {
			return err
		}
		if _, err := waitJS(tab, `!!document.querySelector('[data-testid="nodes-ready"]')`, time.Minute); err != nil {
			return err
		}
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => { location.hash = '#/core/v1/pods'; return true; })()`)); err != nil {
			return err
		}
		if _, err := waitJS(tab, `document.querySelectorAll('table[data-resource="pods"] tbody tr[data-name]').length > 0`, time.Minute); err != nil {
			return err
		}
	}
	open, err := b.window(ctx)
	if err != nil {
		return err
	}
	b.report.Add(fmt.Sprintf("server CPU over %s: no dashboard / %d on the pod list", costWindow, dashboards),
		fmt.Sprintf("%.2f / %.2f cores", idle.cpu, open.cpu))
	b.report.Add(fmt.Sprintf("server RSS: no dashboard / %d open", dashboards), fmt.Sprintf("%s / %s", benchkit.MiB(idle.rss), benchkit.MiB(open.rss)))
	return nil
}

type usage struct {
	cpu float64 // cores, averaged over the window
	rss int64
}

func (b *bench) window(ctx context.Context) (usage, error) {
	pid := b.server.PID()
	before, err := benchkit.CPUSeconds(pid)
	if err != nil {
		return usage{}, err
	}
	if !benchkit.Sleep(ctx, costWindow) {
		return usage{}, ctx.Err()
	}
	after, err := benchkit.CPUSeconds(pid)
	if err != nil {
		return usage{}, err
	}
	rss, err := b.server.RSS()
	return usage{cpu: (after - before) / costWindow.Seconds(), rss: rss}, err
}

func (b *bench) memory(what string) {
	if m, err := b.server.Memory(); err == nil {
		b.report.Add(what, m.String())
	}
}

func (b *bench) stop() {
	if b.sim != nil {
		b.sim.Stop()
	}
	if b.server != nil {
		if err := b.server.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Println("stop server:", err)
		}
	}
}
