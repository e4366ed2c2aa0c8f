// Command scheduler benchmarks skiff's scheduler and controllers against
// simulated nodes: scheduling throughput of many pending pods (plain, and
// with pod anti-affinity and topology spread), the time for a large
// Deployment to become Ready, and the control plane's memory at the
// largest size.
//
//	go build -o bin/skiff ./cmd/skiff
//	go run ./bench/scheduler -skiff bin/skiff -nodes 1000 \
//	    -scenarios plain-10000,plain-30000,spread-10000,deployment-10000
//	go run ./bench/scheduler -skiff bin/skiff -quick
//
// It starts `skiff server --disable-agent --cluster-cidr 10.128.0.0/9` as a
// subprocess on a free port (the /9 leaves a /24 podCIDR for every one of
// thousands of nodes) and the simulated nodes as a `skiff sim` subprocess,
// so the server's RSS holds the control plane alone. Each scenario runs in
// a namespace of its own, deleted (and waited for) before the next. Both
// processes are stopped before the program exits. Figures and how to read
// them are in docs/perf.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// options are the command line.
type options struct {
	skiff           string
	nodes           int
	scenarios       []scenario
	clients         int           // concurrent pod creators
	simQPS          int           // the sim's client rate limit
	scenarioTimeout time.Duration // bound on one scenario, cleanup excluded
	keep            bool
	serverArgs      []string // further `skiff server` flags
	heapDir         string   // receives heap profiles at each memory reading
}

func main() {
	var (
		o         options
		scenarios = flag.String("scenarios", "plain-10000,plain-30000,spread-10000,deployment-10000", "comma-separated KIND-PODS, KIND one of plain, spread, deployment")
		quick     = flag.Bool("quick", false, "a small run to check the program works: 100 nodes, plain-1000,spread-1000,deployment-1000")
		timeout   = flag.Duration("timeout", 90*time.Minute, "give up after this long")
	)
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary to benchmark")
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated nodes")
	flag.IntVar(&o.clients, "clients", 20, "concurrent clients creating pods, each on its own connection")
	flag.IntVar(&o.simQPS, "sim-qps", 2000, "API requests per second allowed to the simulated nodes (burst twice that)")
	flag.DurationVar(&o.scenarioTimeout, "scenario-timeout", 15*time.Minute, "abort a scenario after this long and report what was measured")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and logs")
	flag.StringVar(&o.heapDir, "heap-profiles", "", "save the server's heap profile at each memory reading into this directory (needs -server-arg=--kube-apiserver-arg=profiling=true)")
	flag.Func("server-arg", "a further `flag` of skiff server, such as --kube-scheduler-arg=config=FILE (repeatable)", func(v string) error {
		o.serverArgs = append(o.serverArgs, v)
		return nil
	})
	flag.Parse()
	if *quick {
		o.nodes = 100
		*scenarios = "plain-1000,spread-1000,deployment-1000"
	}
	var err error
	if o.scenarios, err = parseScenarios(*scenarios); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler bench: -scenarios:", err)
		os.Exit(2)
	}
	if _, err := os.Stat(o.skiff); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler bench: -skiff:", err)
		os.Exit(2)
	}
	root, err := os.MkdirTemp("", "skiff-bench-sched-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler bench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	b := &bench{opts: o, root: root, report: &benchkit.Report{}}
	err = b.run(ctx)
	cancel()
	stop()
	if o.keep {
		fmt.Println("data directory and logs kept in", root)
	} else {
		os.RemoveAll(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler bench:", err)
		os.Exit(1)
	}
}

// scenario is one KIND-PODS of -scenarios.
type scenario struct {
	kind string // plain, spread or deployment
	pods int
}

func (s scenario) String() string { return fmt.Sprintf("%s-%d", s.kind, s.pods) }

func parseScenarios(list string) ([]scenario, error) {
	var out []scenario
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, n, ok := strings.Cut(item, "-")
		pods, err := strconv.Atoi(n)
		if !ok || err != nil || pods < 1 {
			return nil, fmt.Errorf("%q: want KIND-PODS, e.g. plain-10000", item)
		}
		switch kind {
		case "plain", "spread", "deployment":
		default:
			return nil, fmt.Errorf("%q: unknown kind %q (plain, spread, deployment)", item, kind)
		}
		out = append(out, scenario{kind, pods})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenarios")
	}
	return out, nil
}

func header(o options) {
	benchkit.PrintHeader(os.Stdout, "skiff scheduler and controllers benchmark", o.skiff)
	fmt.Printf("nodes:   %d simulated (skiff sim subprocess, client limit %d QPS)\n", o.nodes, o.simQPS)
	fmt.Printf("scenarios: %v, %d creating clients, each bounded at %s\n\n", o.scenarios, o.clients, o.scenarioTimeout)
}
