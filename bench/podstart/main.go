// Command podstart benchmarks skiff's node agent: how long pods take from
// create to Running and to Ready on a real node (kubelet over containerd),
// and how much memory the agent and containerd hold idle and with pods.
//
//	go build -o bin/skiff ./cmd/skiff
//	go run ./bench/podstart -skiff bin/skiff -pods 100 -rate 1
//	go run ./bench/podstart -skiff bin/skiff -quick
//
// It needs root (containerd and the kubelet do). It starts `skiff server`
// with its agent as a subprocess on free ports, a data directory under a
// fresh temporary directory and a unique node name, creates the pods of
// localhost/skiff/testhost:latest (netexec, readiness probe on /readyz
// every second) at a steady rate, and times them by a pod informer's
// observation. Then it deletes them, stops the server and runs
// `skiff agent teardown` on its data directory. With -baseline it first
// starts a server with --disable-agent to measure what the agent adds to
// the process. Figures and how to read them are in docs/perf.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// options are the command line.
type options struct {
	skiff       string
	pods        int
	rate        float64
	idle        time.Duration
	imagesDir   string
	clusterCIDR string
	baseline    bool
	keep        bool
	noToken     bool
	serverArgs  []string
}

func main() {
	var (
		o       options
		quick   = flag.Bool("quick", false, "a small run to check the program works: 10 pods at 2/s, 5 s idle waits")
		timeout = flag.Duration("timeout", 30*time.Minute, "give up after this long")
	)
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary to benchmark")
	flag.IntVar(&o.pods, "pods", 100, "pods to create")
	flag.Float64Var(&o.rate, "rate", 1, "pods created per second")
	flag.DurationVar(&o.idle, "idle", 20*time.Second, "wait after the node is Ready before reading idle memory")
	flag.StringVar(&o.imagesDir, "images-dir", "images/out", "OCI image tarballs for the agent to import (built by make build)")
	flag.StringVar(&o.clusterCIDR, "cluster-cidr", "", "pod network (default: the server's, 10.42.0.0/16; every skiff agent on a machine shares the skiff0 bridge, whose gateway address must match)")
	flag.BoolVar(&o.baseline, "baseline", true, "first measure an idle server with --disable-agent, to tell the agent's share of the process")
	flag.Func("server-arg", "an extra `skiff server` flag for the measured server, e.g. --disable-metrics-server (repeatable)", func(v string) error {
		o.serverArgs = append(o.serverArgs, v)
		return nil
	})
	flag.BoolVar(&o.noToken, "no-token", false, "pods without the service account token volume (automountServiceAccountToken: false), to tell what waiting for a volume costs")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories and logs (the agent is still torn down)")
	flag.Parse()
	if *quick {
		o.pods, o.rate, o.idle = 10, 2, 5*time.Second
	}
	if o.pods < 1 || o.rate <= 0 {
		fmt.Fprintln(os.Stderr, "podstart bench: -pods and -rate must be positive")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "podstart bench: needs root (the agent runs containerd and the kubelet)")
		os.Exit(2)
	}
	if _, err := os.Stat(o.skiff); err != nil {
		fmt.Fprintln(os.Stderr, "podstart bench: -skiff:", err)
		os.Exit(2)
	}
	var err error
	if o.imagesDir, err = filepath.Abs(o.imagesDir); err != nil {
		fmt.Fprintln(os.Stderr, "podstart bench:", err)
		os.Exit(2)
	}
	root, err := os.MkdirTemp("", "skiff-bench-podstart-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "podstart bench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	b := &bench{opts: o, root: root, node: "podstart-" + randomSuffix(), report: &benchkit.Report{}}
	err = b.run(ctx)
	cancel()
	stop()
	if o.keep {
		fmt.Println("data directories and logs kept in", root)
	} else {
		os.RemoveAll(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "podstart bench:", err)
		os.Exit(1)
	}
}

func header(o options, node string) {
	benchkit.PrintHeader(os.Stdout, "skiff node agent pod start-up benchmark", o.skiff)
	fmt.Printf("plan:    %d pods at %g/s on node %s, idle wait %s, service account token volume %t, extra server flags %q\n", o.pods, o.rate, node, o.idle, !o.noToken, o.serverArgs)
	others := benchkit.FindProcesses(func(argv []string) bool {
		return filepath.Base(argv[0]) == "containerd" && len(argv) == 3 && argv[1] == "--config"
	})
	fmt.Printf("other skiff containerds on this machine at start: %d (they share the skiff0 bridge and 10.42.0.0/24: pod IPs may collide)\n\n", len(others))
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
