// Command routeapply benchmarks how soon skiff's ingress proxy serves a
// route after it is applied, while the cluster already holds many routes
// (issue 13's target: within 100 ms p99 at 1,000 routes), and what the
// proxy's process holds in memory with them.
//
//	make build && go run ./bench/routeapply -skiff bin/skiff -routes 1000 -samples 100
//	go run ./bench/routeapply -skiff bin/skiff -kind httproute
//
// It starts `skiff server --disable-agent` (the API server over its own
// etcd) as a subprocess, and runs the node proxy's controller
// (internal/ingress, the code the agent runs) in this process against it,
// through the API as an agent does, on free loopback ports. One
// selector-less Service's EndpointSlice points at an HTTP backend of this
// program on the host's first global IPv4 address. It creates -routes
// Ingresses (or HTTPRoutes on one Gateway), one host each, waits until the
// proxy serves them, then creates -samples more one at a time and times
// each from the start of its create call to the proxy's first 200 for its
// host (polled every millisecond). Memory: the Go heap in use and the RSS
// of this process after a GC, holding the routes (an upper bound of the
// proxy's share: the process is the proxy and this small driver).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
	"github.com/skiffdev/skiff/internal/ingress"
)

type options struct {
	skiff   string
	kind    string
	routes  int
	samples int
	workers int
	keep    bool
}

const ns = "routeapply"

func main() {
	var o options
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary whose server to start")
	flag.StringVar(&o.kind, "kind", "ingress", "routes to apply: ingress (networking.k8s.io/v1 Ingress) or httproute (Gateway API)")
	flag.IntVar(&o.routes, "routes", 1000, "routes the cluster holds before the timed ones")
	flag.IntVar(&o.samples, "samples", 100, "routes applied and timed one at a time")
	flag.IntVar(&o.workers, "workers", 8, "concurrent creates while loading the first routes")
	flag.BoolVar(&o.keep, "keep", false, "keep the server's data directory and log")
	flag.Parse()
	switch {
	case o.kind != "ingress" && o.kind != "httproute":
		fail(fmt.Errorf("-kind %q: want ingress or httproute", o.kind))
	case o.routes < 0 || o.routes > 20000 || o.samples < 1 || o.samples > 1000 || o.workers < 1 || o.workers > 64:
		fail(errors.New("-routes 0..20000, -samples 1..1000, -workers 1..64"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "routeapply:", err)
	os.Exit(1)
}

func run(ctx context.Context, o options) error {
	benchkit.PrintHeader(os.Stdout, "skiff route apply → served", o.skiff)
	fmt.Printf("plan:    %d %s routes held, %d timed one at a time\n", o.routes, o.kind, o.samples)
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)

	tmp, err := os.MkdirTemp("", "skiff-routeapply-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(tmp)
	}
	srv, err := benchkit.StartServer(benchkit.ServerOptions{Binary: o.skiff, DataDir: filepath.Join(tmp, "server"), Args: []string{"--disable-agent"}})
	if err != nil {
		return err
	}
	defer srv.Stop()
	if _, err := srv.WaitReady(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("server: %w (log: %s.log)", err, srv.DataDir)
	}
	rc, err := benchkit.RestConfig(srv.Kubeconfig())
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	gwConfig := rest.CopyConfig(rc)
	gwConfig.ContentType = "application/json" // CRDs speak JSON only
	gwClient, err := gateway.NewForConfig(gwConfig)
	if err != nil {
		return err
	}
	if err := benchkit.CreateNamespace(ctx, client, ns); err != nil {
		return err
	}

	backend, err := startBackend(ctx)
	if err != nil {
		return err
	}
	if err := createBackendService(ctx, client, backend); err != nil {
		return err
	}

	ic, err := ingress.New(ingress.Config{
		NodeName: "routeapply", Client: client, GatewayClient: gwClient,
		HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		Addresses:   func() []string { return []string{"127.0.0.1"} },
		WriteStatus: true,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	proxyCtx, stopProxy := context.WithCancel(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- ic.Run(proxyCtx) }()
	defer func() { stopProxy(); <-proxyDone }()
	var httpAddr net.Addr
	for httpAddr == nil {
		if !benchkit.Sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
		select {
		case err := <-proxyDone:
			return fmt.Errorf("ingress controller: %w", err)
		default:
		}
		httpAddr, _ = ic.Addrs()
	}
	addr := httpAddr.String()

	var r router
	if o.kind == "ingress" {
		r = &ingressRouter{client: client}
	} else {
		gr := &httpRouteRouter{client: gwClient}
		if addr, err = gr.setup(ctx); err != nil {
			return err
		}
		r = gr
	}

	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	served := func(host string) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		resp, err := probe.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	start := time.Now()
	if err := createMany(ctx, o.routes, o.workers, func(i int) error { return r.create(ctx, fmt.Sprintf("r%d", i)) }); err != nil {
		return err
	}
	created := time.Since(start)
	for i := o.routes - 1; o.routes > 0; {
		if served(host(fmt.Sprintf("r%d", i))) && served(host("r0")) {
			break
		}
		if !benchkit.Sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("the %d routes were not all served: %w", o.routes, ctx.Err())
		}
	}
	fmt.Printf("loaded:  %d routes created in %s, all served %s after the first create\n",
		o.routes, created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	benchkit.Sleep(ctx, 5*time.Second) // let status writes settle

	var lat benchkit.Latencies
	var slowest string
	var worst time.Duration
	for i := range o.samples {
		name := fmt.Sprintf("s%d", i)
		t0 := time.Now()
		if err := r.create(ctx, name); err != nil {
			return err
		}
		for !served(host(name)) {
			if time.Since(t0) > 10*time.Second {
				return fmt.Errorf("route %s not served 10 s after its create", name)
			}
			if !benchkit.Sleep(ctx, time.Millisecond) {
				return ctx.Err()
			}
		}
		d := time.Since(t0)
		lat.Add(d)
		if d > worst {
			worst, slowest = d, name
		}
		benchkit.Sleep(ctx, 20*time.Millisecond) // one at a time, as a person applies them
	}
	s := lat.Summary()

	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem, err := benchkit.ProcessMemory(os.Getpid())
	if err != nil {
		return err
	}
	total := o.routes + o.samples

	var rep benchkit.Report
	rep.AddTarget(fmt.Sprintf("%s applied → served, p99 (%d samples at %d routes)", o.kind, s.N, o.routes),
		fmt.Sprintf("%.1f ms", ms1(s.P99)), "≤ 100 ms", benchkit.Verdict(s.P99 <= 100*time.Millisecond))
	rep.Add("  p50 / p90 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms (slowest %s)", ms1(s.P50), ms1(s.P90), ms1(s.Max), slowest))
	rep.Add(fmt.Sprintf("Go heap in use holding %d routes", total), fmt.Sprintf("%.1f MiB", float64(ms.HeapInuse)/(1<<20)))
	rep.Add(fmt.Sprintf("this process's RSS holding %d routes", total), mem.String())
	rep.Add("load average during the run", load.Stop())
	fmt.Println()
	rep.Print(os.Stdout)
	return nil
}

func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func host(name string) string { return name + ".routeapply.test" }

// createMany calls create(0..n-1) on workers goroutines, stopping at the
// first error.
func createMany(ctx context.Context, n, workers int, create func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := create(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// startBackend serves 200 "ok" on the host's first global unicast IPv4
// address (an EndpointSlice may not name loopback) and returns the address.
func startBackend(ctx context.Context) (*net.TCPAddr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ip net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			ip = n.IP.To4()
			break
		}
	}
	if ip == nil {
		return nil, errors.New("no global unicast IPv4 address on this host for the backend")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr), nil
}

// createBackendService makes Service "backend" (port 80, no selector) and
// its EndpointSlice naming addr.
func createBackendService(ctx context.Context, client kubernetes.Interface, addr *net.TCPAddr) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "backend-1", Labels: map[string]string{discoveryv1.LabelServiceName: "backend"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr.IP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(addr.Port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	_, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	return err
}

// router creates one route for host(name) to Service "backend".
type router interface {
	create(ctx context.Context, name string) error
}

type ingressRouter struct{ client kubernetes.Interface }

func (r *ingressRouter) create(ctx context.Context, name string) error {
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: host(name),
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "backend", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
	_, err := r.client.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{})
	return err
}

type httpRouteRouter struct{ client gateway.Interface }

// setup waits for the Gateway API (the server installs it after ready) and
// creates Gateway "bench" of class skiff with one HTTP listener on a free
// loopback port, returning the listener's address once it is Programmed.
func (r *httpRouteRouter) setup(ctx context.Context) (string, error) {
	port, err := benchkit.FreePort()
	if err != nil {
		return "", err
	}
	for {
		if _, err := r.client.GatewayV1().GatewayClasses().Get(ctx, ingress.ClassName, metav1.GetOptions{}); err == nil {
			break
		}
		if !benchkit.Sleep(ctx, 200*time.Millisecond) {
			return "", fmt.Errorf("GatewayClass %s never appeared: %w", ingress.ClassName, ctx.Err())
		}
	}
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: gatewayv1.ObjectName(ingress.ClassName),
			Listeners:        []gatewayv1.Listener{{Name: "http", Port: gatewayv1.PortNumber(port), Protocol: gatewayv1.HTTPProtocolType}},
		},
	}
	if _, err := r.client.GatewayV1().Gateways(ns).Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, nil
		}
		if !benchkit.Sleep(ctx, 50*time.Millisecond) {
			return "", fmt.Errorf("Gateway listener %s never opened: %w", addr, ctx.Err())
		}
	}
}

func (r *httpRouteRouter) create(ctx context.Context, name string) error {
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "bench"}}},
			Hostnames:       []gatewayv1.Hostname{gatewayv1.Hostname(host(name))},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "backend", Port: ptr.To(gatewayv1.PortNumber(80))},
			}}}}},
		},
	}
	_, err := r.client.GatewayV1().HTTPRoutes(ns).Create(ctx, route, metav1.CreateOptions{})
	return err
}
