package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffdev/skiff/internal/ingress"
)

// childOptions are the flags of a child process: this program re-executed
// as skiff's proxy or as the backends.
type childOptions struct {
	mode      string // "skiff-proxy" or "backends"
	listen    string // comma-separated addresses
	upstreams string // comma-separated backend addresses (skiff-proxy)
	cert, key string // PEM files (skiff-proxy)
	routes    int    // Ingress routes (skiff-proxy)
}

// backendBody is what every backend answers: 16 bytes.
var backendBody = []byte("ok from backend\n")

func runChild(o childOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch o.mode {
	case "backends":
		return serveBackends(ctx, strings.Split(o.listen, ","))
	case "skiff-proxy":
		return serveSkiff(ctx, o)
	}
	return fmt.Errorf("unknown -mode %q", o.mode)
}

// serveBackends answers every request on each address with 200 and
// backendBody, keep-alive, naming the backend in X-Backend, until ctx ends.
func serveBackends(ctx context.Context, addrs []string) error {
	var servers []*http.Server
	for i, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		id := strconv.Itoa(i)
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				h := w.Header()
				h.Set("Content-Type", "text/plain")
				h.Set("Content-Length", strconv.Itoa(len(backendBody)))
				h.Set("X-Backend", id)
				_, _ = w.Write(backendBody)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
		}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	<-ctx.Done()
	for _, s := range servers {
		s.Close()
	}
	return nil
}

// serveSkiff runs skiff's ingress proxy as the controller does (one
// http.Server from Proxy.Server for HTTP, one for HTTPS) over a table
// built from in-memory objects, until ctx ends.
func serveSkiff(ctx context.Context, o childOptions) error {
	httpAddr, httpsAddr, ok := strings.Cut(o.listen, ",")
	if !ok {
		return fmt.Errorf("-listen %q: want HTTP,HTTPS", o.listen)
	}
	var upstreams []netip.AddrPort
	for _, s := range strings.Split(o.upstreams, ",") {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("-upstreams: %w", err)
		}
		upstreams = append(upstreams, a)
	}
	certPEM, err := os.ReadFile(o.cert)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(o.key)
	if err != nil {
		return err
	}
	in := skiffState(o.routes, upstreams, certPEM, keyPEM, time.Now())
	t := ingress.Build(in)
	if p := slices.Concat(t.Problems, t.Conflicts); len(p) > 0 {
		return fmt.Errorf("table has %d problems, the first: %s", len(p), p[0])
	}
	_, port, err := net.SplitHostPort(httpsAddr)
	if err != nil {
		return err
	}
	httpsPort, _ := strconv.Atoi(port)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := ingress.NewProxy(ingress.ProxyConfig{HTTPSPort: httpsPort, Log: log})
	if err != nil {
		return err
	}
	p.SetTable(t)
	if f := os.Getenv("BENCH_INGRESS_CPU_PROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	var servers []*http.Server
	for _, l := range []struct {
		addr   string
		secure bool
	}{{httpAddr, false}, {httpsAddr, true}} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			wg.Wait()
			return err
		}
		srv := p.Server(l.secure)
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if l.secure {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if s.Shutdown(sctx) != nil {
			s.Close()
		}
	}
	wg.Wait()
	p.CloseIdleConnections()
	// The objects stay reachable to the end, as the controller's informer
	// caches keep them, so that the memory read meanwhile includes them.
	runtime.KeepAlive(in)
	return err
}

// benchNamespace holds every object skiff's table is built from.
const benchNamespace = "bench"

// skiffState is what ingress.Build reads. With routes 1 it is the route
// every peer serves: Ingress "bench" for bench.local, / Prefix, to Service
// "echo" port 80 (named http), whose endpoints are the upstreams, one
// EndpointSlice each (a slice has one port per name, and every upstream
// listens on a port of its own); TLS with Secret "bench-tls". With more
// routes, for the memory measurement, it is that many Ingresses for hosts
// h0001.bench.local and on, each with a Service and one EndpointSlice of
// its own holding one upstream (round robin over the upstreams), no TLS.
func skiffState(routes int, upstreams []netip.AddrPort, certPEM, keyPEM []byte, now time.Time) ingress.State {
	in := ingress.State{Class: ingress.ClassName, Now: now}
	if routes <= 1 {
		addRoute(&in, "bench", benchHost, "echo", upstreams, "bench-tls", now)
		in.Secrets = append(in.Secrets, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: "bench-tls", CreationTimestamp: metav1.NewTime(now)},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		})
		return in
	}
	for i := 1; i <= routes; i++ {
		name := fmt.Sprintf("h%04d", i)
		addRoute(&in, name, routeHost(i), "svc-"+name, upstreams[i%len(upstreams):i%len(upstreams)+1], "", now)
	}
	return in
}

// routeHost is the host of route i (from 1) of the memory measurement.
func routeHost(i int) string { return fmt.Sprintf("h%04d.%s", i, benchHost) }

// addRoute adds an Ingress for host / to Service svc port 80, the Service,
// and one EndpointSlice per upstream; with tlsSecret, spec.tls names it.
func addRoute(in *ingress.State, name, host, svc string, upstreams []netip.AddrPort, tlsSecret string, now time.Time) {
	created := metav1.NewTime(now)
	class := ingress.ClassName
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: benchNamespace, Name: name, CreationTimestamp: created,
			// Plain HTTP is proxied, as every peer does, not redirected
			// (the default for a host in spec.tls).
			Annotations: map[string]string{ingress.AnnSSLRedirect: "false"},
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
	if tlsSecret != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: tlsSecret}}
	}
	in.Ingresses = append(in.Ingresses, ing)
	in.Services = append(in.Services, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: svc, CreationTimestamp: created},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080),
			}},
		},
	})
	portName, tcp, ready := "http", corev1.ProtocolTCP, true
	for i, u := range upstreams {
		port := int32(u.Port())
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: benchNamespace, Name: fmt.Sprintf("%s-%d", svc, i), CreationTimestamp: created,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{u.Addr().String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			}},
			Ports: []discoveryv1.EndpointPort{{Name: &portName, Protocol: &tcp, Port: &port}},
		})
	}
}
