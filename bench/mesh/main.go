// Command mesh benchmarks what skiff's service mesh costs (issue 17): the
// latency it adds to a request, p50 and p99, against the same pods with the
// mesh off, on HTTP/1.1, h2c and gRPC, between pods of one node and of two;
// the node proxy's memory with 100 enrolled pods; and its CPU time per
// 1,000 requests.
//
//	flock /tmp/skiff-netns.lock make build
//	go build -o /tmp/bench-mesh ./bench/mesh
//	flock /tmp/skiff-netns.lock /tmp/bench-mesh -skiff bin/skiff
//	flock /tmp/skiff-netns.lock /tmp/bench-mesh -skiff bin/skiff -rounds 1 -requests 200 -pods 0 -cpu-duration 3s   # a quick check
//
// It needs root, and a quiet machine: it refuses to start when the 1-minute
// load average is above -max-load (2) unless -force. It starts a two-node
// cluster with scripts/netns-cluster.sh (run it from the repository's root,
// or give -script): the server in the host's network namespace, nodes skiff-n1 and skiff-n2 in namespaces of
// their own, so traffic between nodes crosses a real (veth) link. The
// script's namespace names are fixed, so only one such cluster can run on a
// machine: take the lock above, which the e2e network tests share; the
// benchmark refuses to start while the namespaces exist. It takes the
// cluster down at the end, also after a failure or an interrupt.
//
// Namespace mesh-on is enrolled (mesh.skiff.dev/enabled=true), mesh-off is
// not; each holds the same pods: a testhost netexec server on skiff-n2 and
// one on skiff-n1 (HTTP on 8080, gRPC health on 8082) and a client on
// skiff-n1. Once they are ready and every mesh-on pod's identity condition
// (mesh.skiff.dev/Identity) is True, the client runs `testhost http-load`
// (kubectl exec) against each server's pod IP, so kube-proxy is not in the
// comparison, and against a ClusterIP Service of the skiff-n2 server
// (HTTP/1.1 only): mesh-off then mesh-on, -rounds times, each run after -warmup uncounted
// requests. A row's figure is the median over rounds of each run's p50 (and
// of its p99). netexec's HTTP server may not speak h2c: the h2c rows are
// then left out, saying so. The n1 proxy's metrics must show the mesh-on
// connections, and none of mesh-off's, or the run fails. Then the CPU time of both nodes' agents (the proxy runs
// inside the agent) during -cpu-duration at -cpu-rate requests/s, mesh-on
// minus mesh-off; then node skiff-n1's agent memory with -pods pause pods in
// namespace mesh-scale before and after it is enrolled (the difference is
// the mesh's alone: the kubelet already runs the pods). Figures and how to
// read them are in docs/perf.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// options are the command line.
type options struct {
	skiff, script  string
	port           int
	rounds         int
	requests       int
	warmup         int
	concurrency    int
	protocols      []string
	pods           int
	settle         time.Duration
	cpuRate        int
	cpuDuration    time.Duration
	cpuConcurrency int
	maxLoad        float64
	force, keep    bool
}

func main() {
	var (
		o         options
		protocols = flag.String("protocols", "http1,h2c,grpc", "protocols to measure: http1 (keep-alive), h2c, grpc (health checks)")
		timeout   = flag.Duration("timeout", time.Hour, "give up after this long")
		scrape    = flag.String("scrape", "", "internal: print the body of this URL and exit (run inside a node's network namespace)")
	)
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary (make build; its images come from images/out beside bin/)")
	flag.StringVar(&o.script, "script", "scripts/netns-cluster.sh", "the multi-node cluster script")
	flag.IntVar(&o.port, "port", 0, "the API server's port (0: a free one)")
	flag.IntVar(&o.rounds, "rounds", 3, "runs of each measurement per namespace, mesh-off and mesh-on alternating")
	flag.IntVar(&o.requests, "requests", 2000, "requests per latency run")
	flag.IntVar(&o.warmup, "warmup", 100, "uncounted requests before each latency run")
	flag.IntVar(&o.concurrency, "concurrency", 1, "client workers in the latency runs")
	flag.IntVar(&o.pods, "pods", 100, "pause pods enrolled on skiff-n1 for the memory figure (0: skip that step)")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "rest before each memory reading")
	flag.IntVar(&o.cpuRate, "cpu-rate", 1000, "requests per second of the CPU runs (0: skip the CPU step)")
	flag.DurationVar(&o.cpuDuration, "cpu-duration", 10*time.Second, "length of each CPU run")
	flag.IntVar(&o.cpuConcurrency, "cpu-concurrency", 4, "client workers in the CPU runs")
	flag.Float64Var(&o.maxLoad, "max-load", 2, "refuse to start when the 1-minute load average is above this")
	flag.BoolVar(&o.force, "force", false, "start whatever the load average")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster's directory (data and logs)")
	flag.Parse()

	if *scrape != "" {
		if err := printURL(*scrape); err != nil {
			fmt.Fprintln(os.Stderr, "bench/mesh -scrape:", err)
			os.Exit(1)
		}
		return
	}
	for _, p := range strings.Split(*protocols, ",") {
		switch p {
		case protoHTTP1, protoH2C, protoGRPC:
			o.protocols = append(o.protocols, p)
		default:
			fail(2, fmt.Errorf("-protocols: unknown %q", p))
		}
	}
	if o.rounds < 1 || o.requests < 1 || o.concurrency < 1 || o.pods < 0 || o.cpuRate < 0 || o.cpuConcurrency < 1 || o.cpuDuration <= 0 {
		fail(2, errors.New("-rounds, -requests, -concurrency and -cpu-concurrency must be positive; -pods and -cpu-rate 0 or more"))
	}
	warning, err := preflight(&o)
	if err != nil {
		fail(2, err)
	}

	benchkit.PrintHeader(os.Stdout, "skiff service mesh: added latency and node proxy cost", o.skiff)
	loadBefore := benchkit.LoadAvg()
	fmt.Printf("load average before: %s\n%s\n", loadBefore, warning)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop() // until then, further signals are caught: the cluster is taken down in peace
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-mesh-")
	if err != nil {
		fail(1, err)
	}
	c := &cluster{skiff: o.skiff, script: o.script, dir: dir, port: o.port}
	report := &benchkit.Report{}
	if warning != "" {
		report.Add("started with -force on a busy machine", "load "+loadBefore+": not a record")
	}
	err = run(ctx, o, c, report)
	c.down()
	report.Add("load average before / after (1, 5, 15 min)", loadBefore+" / "+benchkit.LoadAvg())
	report.Print(os.Stdout)
	if err != nil || o.keep {
		fmt.Println("\ncluster directory (data and logs) kept in", dir)
	} else {
		os.RemoveAll(dir)
	}
	if err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "bench/mesh:", err)
	os.Exit(code)
}

// preflight checks what the run needs before anything starts: root, the
// tools, the binary and script, no other netns cluster, a quiet machine.
// With -force, a busy machine is a warning to print with the figures.
func preflight(o *options) (warning string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root (network namespaces, containerd, nftables)")
	}
	for _, tool := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s not installed", tool)
		}
	}
	for _, p := range []*string{&o.skiff, &o.script} {
		if _, err := os.Stat(*p); err != nil {
			return "", err
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return "", err
		}
		*p = abs
	}
	for _, ns := range []string{"skiff-lan", "skiff-n1", "skiff-n2"} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			return "", fmt.Errorf("network namespace %s exists: another netns-cluster.sh cluster runs (or a stale one: scripts/netns-cluster.sh down DIR); run under flock /tmp/skiff-netns.lock", ns)
		}
	}
	if load := loadAvg1(); load > o.maxLoad {
		if !o.force {
			return "", fmt.Errorf("the 1-minute load average is %.2f, above %.2f: latency figures taken at load 5-40 have been noise "+
				"(docs/perf.md), so wait for a quiet machine, or pass -force to run anyway (and say so with the figures)", load, o.maxLoad)
		}
		warning = fmt.Sprintf("WARNING: 1-minute load average %.2f, above %.2f; run with -force: these figures are not a record\n", load, o.maxLoad)
	}
	if o.port == 0 {
		p, err := benchkit.FreePort()
		if err != nil {
			return "", err
		}
		o.port = p
	}
	return warning, nil
}

// loadAvg1 is the 1-minute load average (0 when unreadable).
func loadAvg1() float64 {
	f := strings.Fields(benchkit.LoadAvg())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// run does the whole benchmark on cluster c, whose teardown is the
// caller's.
func run(ctx context.Context, o options, c *cluster, report *benchkit.Report) error {
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)
	defer func() { report.Add("1-minute load average during the run", load.Stop()) }()

	started := time.Now()
	if err := c.up(ctx); err != nil {
		return err
	}
	fmt.Printf("two-node cluster up in %s (%s)\n", time.Since(started).Round(time.Second), c.dir)
	w, err := deploy(ctx, c)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	rows, err := latency(ctx, c, o, w)
	if len(rows) > 0 {
		printLatency(os.Stdout, rows)
		addLatencyTargets(report, rows)
	}
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if err := carried(ctx, report); err != nil {
		return err
	}
	if o.cpuRate > 0 {
		if err := cpu(ctx, c, o, w, report); err != nil {
			return fmt.Errorf("cpu: %w", err)
		}
	}
	if o.pods > 0 {
		if err := memory(ctx, c, o, report); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	} else {
		fmt.Println("\nmemory step skipped (-pods 0)")
	}
	return nil
}

// printURL writes url's body to stdout: the benchmark runs itself with
// -scrape inside a node's network namespace to read that node's
// kube-proxy metrics on 127.0.0.1.
func printURL(url string) error {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
