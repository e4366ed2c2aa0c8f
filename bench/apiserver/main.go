// Command apiserver benchmarks skiff's control plane on the embedded
// datastore: start-up time, idle memory, request latency and throughput
// at 1, 10 and 100 concurrent clients, LIST of many pods from the watch
// cache, watch fan-out to many watchers, and memory holding many pods.
//
//	go build -o bin/skiff ./cmd/skiff
//	go run ./bench/apiserver -skiff bin/skiff [-quick]
//
// It starts `skiff server` subprocesses on free ports with data directories
// under a fresh temporary directory, talks to them only on 127.0.0.1, and
// stops every one it started. Load runs against a server started with
// --disable-controller-manager --disable-scheduler, so pods are stored
// objects only. Figures and how to read them are in docs/perf.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// plan is how much work each measurement does.
type plan struct {
	starts       int           // fresh starts, and restarts, to time
	idle         time.Duration // wait after ready before reading idle RSS
	opsPerLevel  int           // operations of each kind per concurrency level
	levels       []int         // concurrent clients
	phaseLimit   time.Duration // bound on any one timed phase
	manyPods     int           // pods to hold and LIST
	lists        int           // LISTs per variant
	pageSize     int64
	watchers     int
	watchClients int // HTTP/2 connections the watchers share
	burst        int // events each watcher must receive
}

var (
	fullPlan = plan{
		starts: 5, idle: 20 * time.Second, opsPerLevel: 3000, levels: []int{1, 10, 100},
		phaseLimit: 90 * time.Second, manyPods: 10000, lists: 20, pageSize: 500,
		watchers: 1000, watchClients: 10, burst: 100,
	}
	quickPlan = plan{
		starts: 2, idle: 5 * time.Second, opsPerLevel: 300, levels: []int{1, 10, 100},
		phaseLimit: 30 * time.Second, manyPods: 1000, lists: 5, pageSize: 500,
		watchers: 100, watchClients: 2, burst: 20,
	}
)

func main() {
	var (
		skiff      = flag.String("skiff", "bin/skiff", "skiff binary to benchmark")
		quick      = flag.Bool("quick", false, "a smaller, faster run to check the benchmark itself works")
		phases     = flag.String("phases", "startup,idle,load", "comma-separated phases to run: startup, idle, load")
		serverEnv  = flag.String("server-env", "", "extra environment for the servers only, comma-separated KEY=VALUE (e.g. GOGC=50,GOMEMLIMIT=100MiB)")
		serverArgs = flag.String("server-args", "", "extra skiff server flags for every server, comma-separated (e.g. --kube-apiserver-arg=profiling=true)")
		heapDir    = flag.String("heap-profiles", "", "save the API server's heap profile at each memory reading into this directory (needs --kube-apiserver-arg=profiling=true in -server-args)")
		keep       = flag.Bool("keep", false, "keep the data directories and server logs")
		timeout    = flag.Duration("timeout", 40*time.Minute, "give up after this long")
		idle       = flag.Duration("idle", 0, "how long after ready the idle memory is read (default 20s; 5s with -quick)")
	)
	flag.Parse()
	p := fullPlan
	if *quick {
		p = quickPlan
	}
	if *idle > 0 {
		p.idle = *idle
	}
	if _, err := os.Stat(*skiff); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver bench: -skiff:", err)
		os.Exit(2)
	}
	var env []string
	if *serverEnv != "" {
		env = strings.Split(*serverEnv, ",")
	}
	root, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver bench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	// The control plane alone: no node agent (bench/podstart measures it),
	// so no kubelet, kube-proxy or containerd in the figures.
	args := []string{"--disable-agent"}
	if *serverArgs != "" {
		args = append(args, strings.Split(*serverArgs, ",")...)
	}
	b := &bench{skiff: *skiff, root: root, env: env, args: args, heapDir: *heapDir, plan: p, report: &benchkit.Report{}}
	err = b.run(ctx, strings.Split(*phases, ","))
	cancel()
	stop()
	if !*keep {
		os.RemoveAll(root)
	} else {
		fmt.Println("data directories and logs kept in", root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver bench:", err)
		os.Exit(1)
	}
}

// bench is one run of the benchmark.
type bench struct {
	skiff string
	root  string   // parent of every data directory
	env   []string // for the servers
	args  []string // extra server flags
	// heapDir, when set, receives heap profiles at each memory reading.
	heapDir string
	plan    plan
	report  *benchkit.Report
}

func (b *bench) run(ctx context.Context, phases []string) error {
	load := benchkit.StartLoadSampler(ctx, 10*time.Second)
	b.header()
	for _, ph := range phases {
		var err error
		switch strings.TrimSpace(ph) {
		case "startup":
			err = b.startup(ctx)
		case "idle":
			err = b.idleFull(ctx)
		case "load":
			err = b.load(ctx)
		case "":
		default:
			err = fmt.Errorf("unknown phase %q", ph)
		}
		if err != nil {
			return fmt.Errorf("phase %s: %w", ph, err)
		}
	}
	b.report.Print(os.Stdout)
	fmt.Printf("\nload average (1 min) during the run: %s\n", load.Stop())
	return nil
}

func (b *bench) header() {
	benchkit.PrintHeader(os.Stdout, "skiff control-plane benchmark", b.skiff)
	fmt.Printf("plan:    %+v\n", b.plan)
	if len(b.env) > 0 {
		fmt.Printf("server environment: %s\n", strings.Join(b.env, " "))
	}
	if len(b.args) > 0 {
		fmt.Printf("extra server flags: %s\n", strings.Join(b.args, " "))
	}
	fmt.Println()
}

func (b *bench) dataDir(name string) string { return filepath.Join(b.root, name) }
