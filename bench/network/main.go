// Command network benchmarks skiff's networking (issue 7):
//
//   - dataplane: how long kube-proxy (upstream, nftables mode, inside the
//     agent) takes to program 1,000 and 10,000 Services of 5 endpoints each,
//     by its own metrics and by the time from creating a Service to its
//     ClusterIP appearing in `nft list map ip kube-proxy service-ips`;
//   - latency: sequential HTTP GETs (no keep-alive) from the node to a
//     testhost pod, directly at its pod IP and through its ClusterIP;
//   - dns: A queries per second answered by skiff's DNS (internal/dns, fed a
//     fake clientset) and by CoreDNS (its file plugin) holding the same
//     records, under the same load program.
//
// Run it so:
//
//	go build -o bin/skiff ./cmd/skiff
//	go run ./bench/network -skiff bin/skiff -coredns /root/go/bin/coredns
//
// It needs root. The cluster phases run one `skiff server` with its agent in
// a network namespace of the benchmark's own (-netns), so its kube-proxy
// table, bridge and metrics port are private: the benchmark re-executes
// itself there with nsenter (network namespace only, as
// scripts/netns-cluster.sh does), and removes the namespace, the agent
// (`skiff agent teardown`) and the data directory at the end. The DNS phase
// runs both servers as child processes on the namespace's loopback. Figures
// and how to read them are in docs/perf.md.
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

// options are the command line.
type options struct {
	skiff       string
	phases      map[string]bool
	services    []int
	endpoints   int
	requests    int
	dnsServices int
	dnsWorkers  int
	dnsDuration time.Duration
	dnsRounds   int
	coredns     string
	kubeProxy   string
	imagesDir   string
	netns       string
	keep        bool
}

func main() {
	var (
		o        options
		phases   = flag.String("phases", "dataplane,latency,dns", "what to measure")
		services = flag.String("services", "1000,10000", "Service counts for the dataplane phase, cumulative")
		timeout  = flag.Duration("timeout", 40*time.Minute, "give up after this long")
		inNetns  = flag.Bool("in-netns", false, "internal: already inside -netns")
		serveDNS = flag.String("serve-skiff-dns", "", "internal: serve skiff's DNS with -dns-services Services on this address until killed")
	)
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary")
	flag.IntVar(&o.endpoints, "endpoints", 5, "endpoints per Service in the dataplane phase")
	flag.IntVar(&o.requests, "requests", 2000, "HTTP requests per target in the latency phase")
	flag.IntVar(&o.dnsServices, "dns-services", 1000, "Services (A records) the DNS servers hold")
	flag.IntVar(&o.dnsWorkers, "dns-workers", 8, "concurrent DNS clients, each on its own UDP socket")
	flag.DurationVar(&o.dnsDuration, "dns-duration", 10*time.Second, "load time per DNS round")
	flag.IntVar(&o.dnsRounds, "dns-rounds", 2, "rounds per DNS server, alternating skiff and CoreDNS")
	flag.StringVar(&o.coredns, "coredns", "", "CoreDNS binary (empty: skiff's DNS alone)")
	flag.StringVar(&o.kubeProxy, "kube-proxy", "", "upstream kube-proxy binary, the dataplane anchor (go build -o bin/kube-proxy k8s.io/kubernetes/cmd/kube-proxy; empty: skiff alone)")
	flag.StringVar(&o.imagesDir, "images-dir", "images/out", "OCI image tarballs for the agent (built by make build)")
	flag.StringVar(&o.netns, "netns", "skiff-bench-net", "network namespace created for the cluster phases")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and logs")
	flag.Parse()

	if *serveDNS != "" {
		if err := serveSkiffDNS(*serveDNS, o.dnsServices); err != nil {
			fmt.Fprintln(os.Stderr, "skiff dns:", err)
			os.Exit(1)
		}
		return
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p {
		case "dataplane", "latency", "dns":
			o.phases[p] = true
		default:
			fail(2, fmt.Errorf("unknown phase %q", p))
		}
	}
	for _, s := range strings.Split(*services, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			fail(2, fmt.Errorf("-services: %q", s))
		}
		if len(o.services) > 0 && n <= o.services[len(o.services)-1] {
			fail(2, fmt.Errorf("-services must grow: %q", *services))
		}
		o.services = append(o.services, n)
	}
	if os.Geteuid() != 0 {
		fail(2, fmt.Errorf("needs root (network namespaces, containerd, nftables)"))
	}
	var err error
	for _, p := range []*string{&o.skiff, &o.imagesDir, &o.coredns, &o.kubeProxy} {
		if *p == "" {
			continue
		}
		if _, err := os.Stat(*p); err != nil {
			fail(2, err)
		}
		if *p, err = filepath.Abs(*p); err != nil {
			fail(2, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if !*inNetns {
		header(o)
		err = inNamespace(ctx, o.netns, os.Args[1:])
	} else {
		err = runPhases(ctx, o)
	}
	if err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "network bench:", err)
	os.Exit(code)
}

func header(o options) {
	benchkit.PrintHeader(os.Stdout, "skiff networking benchmark", o.skiff)
	fmt.Println()
}

// runPhases runs inside the benchmark's network namespace.
func runPhases(ctx context.Context, o options) error {
	report := &benchkit.Report{}
	defer report.Print(os.Stdout)
	if o.phases["dataplane"] || o.phases["latency"] {
		c, err := startCluster(ctx, o)
		if c != nil {
			defer func() {
				if err := c.teardown(); err != nil {
					fmt.Fprintln(os.Stderr, "teardown:", err)
				}
			}()
		}
		if err != nil {
			return err
		}
		if o.phases["latency"] {
			if err := latency(ctx, c, o, report); err != nil {
				return fmt.Errorf("latency: %w", err)
			}
		}
		if o.phases["dataplane"] {
			if err := dataplane(ctx, c, o, report); err != nil {
				return fmt.Errorf("dataplane: %w", err)
			}
		}
	}
	if o.phases["dns"] {
		if err := dnsPhase(ctx, o, report); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	return nil
}
