// Command ingress benchmarks skiff's ingress proxy (internal/ingress)
// side by side with HAProxy, NGINX and Caddy, in one run, under the same
// load: requests per second, p50 and p99 latency and resident memory for
//
//   - h1-keepalive       HTTP/1.1 keep-alive, plain (wrk)
//   - h1-close           HTTP/1.1, a new connection per request, plain (wrk)
//   - h1-tls-keepalive   HTTP/1.1 keep-alive over TLS (wrk)
//   - h1-tls-close       HTTP/1.1, a new TLS connection per request (wrk)
//   - h2-tls             HTTP/2 over TLS, ALPN h2 (h2load)
//
// and skiff's memory holding 1,000 Ingress routes. Run it so:
//
//	make bench-ingress                                   # installs the peers, then a full run
//	go run ./bench/ingress                               # the same, peers already installed
//	go run ./bench/ingress -duration 2s -warmup 1s       # a smoke run of the program itself
//
// Every peer serves the same route: Host bench.local, path /, round robin
// over -backends small HTTP/1.1 servers (16-byte body) with keep-alive to
// them, TLS with one self-signed ECDSA P-256 certificate, h2 and http/1.1
// offered by ALPN, access logs off, X-Forwarded-For/-Proto/-Host set. Each
// proxy is a child process: skiff's is this program re-executed
// (-mode skiff-proxy) building its table with ingress.Build from in-memory
// objects (an Ingress, a Service, one EndpointSlice per backend, a TLS
// Secret) and serving it with ingress.Proxy's own http.Servers; the
// backends are another child (-mode backends), so neither shares a Go
// runtime with the load generators or the other. NGINX runs
// worker_processes auto, HAProxy nbthread = the CPU count, Caddy and skiff
// GOMAXPROCS = the CPU count. The scenarios run one after another, and in
// each the peers one after another (the order rotating from scenario to
// scenario), never two loads at once; each load is preceded by a -warmup
// of the same load, not counted. Everything listens on, and every request
// goes to, 127.0.0.1.
//
// The load generators, the backends and the proxy share the machine's
// CPUs: on a small machine the figures measure the proxy's efficiency
// (requests per CPU) as much as its speed, and the same holds for every
// peer. RSS is VmRSS summed over the proxy's process tree (NGINX's master
// and workers; shared pages counted once per process).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// options are the command line.
type options struct {
	peers     []string
	scenarios []scenario
	backends  int
	duration  time.Duration // measured load per scenario and peer
	warmup    time.Duration // unmeasured load before each measured one
	conns     int           // wrk connections
	threads   int           // wrk and h2load threads
	h2Clients int           // h2load connections
	h2Streams int           // h2load concurrent streams per connection
	routes    int           // routes of the memory measurement; 0 skips it
	keep      bool
}

func main() {
	var (
		o         options
		peers     = flag.String("peers", "skiff,haproxy,nginx,caddy", "comma-separated proxies to measure: skiff, haproxy, nginx, caddy")
		scenarios = flag.String("scenarios", "h1-keepalive,h1-close,h1-tls-keepalive,h1-tls-close,h2-tls", "comma-separated scenarios")
		timeout   = flag.Duration("timeout", 40*time.Minute, "give up after this long")
		child     childOptions
	)
	flag.IntVar(&o.backends, "backends", 4, "backend servers behind the route")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured load per scenario and peer")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measured one")
	flag.IntVar(&o.conns, "connections", 64, "wrk: connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk and h2load: threads")
	flag.IntVar(&o.h2Clients, "h2-clients", 16, "h2load: connections")
	flag.IntVar(&o.h2Streams, "h2-streams", 10, "h2load: concurrent streams per connection")
	flag.IntVar(&o.routes, "routes", 1000, "Ingress routes for skiff's memory measurement (0 skips it)")
	flag.BoolVar(&o.keep, "keep", false, "keep the configurations and logs")
	// The child processes' flags: this program re-executes itself.
	flag.StringVar(&child.mode, "mode", "", "internal: run as a child: skiff-proxy or backends")
	flag.StringVar(&child.listen, "listen", "", "internal: skiff-proxy: HTTP,HTTPS listen addresses; backends: listen addresses")
	flag.StringVar(&child.upstreams, "upstreams", "", "internal: skiff-proxy: backend addresses")
	flag.StringVar(&child.cert, "cert", "", "internal: skiff-proxy: certificate PEM file")
	flag.StringVar(&child.key, "key", "", "internal: skiff-proxy: key PEM file")
	flag.IntVar(&child.routes, "child-routes", 1, "internal: skiff-proxy: Ingress routes (1: bench.local only)")
	flag.Parse()

	if child.mode != "" {
		if err := runChild(child); err != nil {
			fmt.Fprintf(os.Stderr, "ingress bench %s: %v\n", child.mode, err)
			os.Exit(1)
		}
		return
	}
	var err error
	if o.peers, err = parsePeers(*peers); err != nil {
		fail(2, fmt.Errorf("-peers: %w", err))
	}
	if o.scenarios, err = parseScenarios(*scenarios); err != nil {
		fail(2, fmt.Errorf("-scenarios: %w", err))
	}
	switch {
	case o.backends < 1 || o.backends > 64:
		fail(2, fmt.Errorf("-backends %d: want 1 to 64", o.backends))
	case o.duration < time.Second || o.warmup < 0:
		fail(2, fmt.Errorf("-duration must be at least 1s and -warmup not negative"))
	case o.conns < o.threads || o.h2Clients < o.threads || o.threads < 1 || o.h2Streams < 1:
		fail(2, fmt.Errorf("-connections and -h2-clients must be at least -threads, which must be at least 1"))
	case o.routes < 0 || o.routes > 9999:
		fail(2, fmt.Errorf("-routes %d: want 0 to 9999", o.routes))
	}
	if err := checkTools(o); err != nil {
		fail(2, err)
	}
	root, err := os.MkdirTemp("", "skiff-bench-ingress-")
	if err != nil {
		fail(1, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	b := &bench{opts: o, root: root, report: &benchkit.Report{}}
	err = b.run(ctx)
	cancel()
	stop()
	if o.keep || err != nil {
		fmt.Println("configurations and logs kept in", root)
	} else {
		os.RemoveAll(root)
	}
	if err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "ingress bench:", err)
	os.Exit(code)
}

// bench is one run of the benchmark.
type bench struct {
	opts   options
	root   string // configurations, certificate and logs
	self   string // this program, re-executed for the children
	cert   certFiles
	report *benchkit.Report
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	load := benchkit.StartLoadSampler(ctx, 10*time.Second)
	b.header()
	if b.cert, err = writeCertificate(b.root); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	be, err := startBackends(ctx, b.self, b.root, b.opts.backends)
	if err != nil {
		return err
	}
	defer be.stop()

	var running []*peer
	defer func() {
		for _, p := range running {
			p.stop()
		}
	}()
	fmt.Println("## peers")
	for _, name := range b.opts.peers {
		p, err := startPeer(ctx, name, peerSetup{dir: b.root, self: b.self, upstreams: be.addrs, cert: b.cert, threads: runtime.NumCPU()})
		if err != nil {
			return err
		}
		running = append(running, p)
		fmt.Printf("  %-8s %s; %s; idle RSS %s; %s\n", p.name, p.version, p.notes, benchkit.MiB(p.idleRSS), p.check)
	}
	fmt.Println()

	results := map[string]map[string]result{} // by scenario, then peer
	for i, sc := range b.opts.scenarios {
		fmt.Printf("## %s: %s\n", sc.name, sc.describe(b.opts))
		results[sc.name] = map[string]result{}
		for j := range running {
			p := running[(i+j)%len(running)]
			r, err := b.measure(ctx, sc, p)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sc.name, p.name, err)
			}
			results[sc.name][p.name] = r
			fmt.Printf("  %-8s %s\n", p.name, r)
		}
		b.targets(sc, results[sc.name])
		fmt.Println()
	}
	for _, p := range running {
		p.stop()
	}
	running = nil

	if b.opts.routes > 0 && slices.Contains(b.opts.peers, "skiff") {
		fmt.Printf("## skiff's proxy holding %d Ingress routes\n", b.opts.routes)
		m, err := b.manyRoutes(ctx, be.addrs)
		if err != nil {
			return fmt.Errorf("memory at %d routes: %w", b.opts.routes, err)
		}
		b.report.AddTarget(fmt.Sprintf("skiff RSS at %d routes", b.opts.routes),
			fmt.Sprintf("%s = %.1f MB (anon %s, file-backed %s)", benchkit.MiB(m.RSS), float64(m.RSS)/1e6, benchkit.MiB(m.Anon), benchkit.MiB(m.File)),
			"< 30 MB", benchkit.Verdict(m.RSS < 30e6))
		fmt.Println()
	}

	fmt.Println("## Figures by scenario")
	for _, sc := range b.opts.scenarios {
		printTable(os.Stdout, sc, b.opts, b.opts.peers, results[sc.name])
	}
	b.report.Print(os.Stdout)
	fmt.Printf("\nload average after: %s\n", benchkit.LoadAvg())
	fmt.Printf("load average (1 min) during the run: %s\n", load.Stop())
	return nil
}

func (b *bench) header() {
	benchkit.PrintHeader(os.Stdout, "skiff ingress proxy against HAProxy, NGINX and Caddy", b.self)
	fmt.Printf("go:      %s, GOMAXPROCS %d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	if rev := sourceRevision(); rev != "" {
		fmt.Printf("source:  %s\n", rev)
	}
	o := b.opts
	fmt.Printf("plan:    peers %s; %d backends; %s per load after %s warm-up; wrk -t %d -c %d; h2load -t %d -c %d -m %d; %d routes for memory\n",
		strings.Join(o.peers, ","), o.backends, o.duration, o.warmup, o.threads, o.conns, o.threads, o.h2Clients, o.h2Streams, o.routes)
	fmt.Printf("tools:   %s; %s\n", toolVersion("wrk", "-v"), toolVersion("h2load", "--version"))
	fmt.Printf("load average before: %s\n\n", benchkit.LoadAvg())
}
