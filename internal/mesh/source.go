package mesh

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Routes applies the Gateway API's mesh routes (GAMMA: HTTPRoutes and
// GRPCRoutes whose parent is a Service) to in-mesh requests; the node's
// ingress proxy implements it (internal/ingress), so matches, weighted
// backends, timeouts, retries and balancing are the same code for both.
type Routes interface {
	// HasMeshRoutes reports whether routes attach to svc's port.
	HasMeshRoutes(svc types.NamespacedName, port int32) bool
	// MeshHandler serves requests to svc's port from a client in
	// clientNamespace by its routes, sending them through h1 (HTTP/1.1)
	// or h2c (HTTP/2 without TLS); nil when no route attaches.
	MeshHandler(svc types.NamespacedName, port int32, clientNamespace string, h1, h2c http.RoundTripper) http.Handler
}

// routed serves a client connection to a Service with mesh routes,
// HTTP/1.x or h2c (gRPC): each request is routed by them and sent through
// the mesh as the client's identity, and counted as the source reporter
// (gRPC calls with their status).
func (p *Proxy) routed(ctx context.Context, h http.Handler, f flow, c net.Conn) {
	// The routes choose the backend per request: the destination is the
	// Service, its workload unknown here.
	f.protocol = "http"
	f.dstWorkload, f.dstPrincipal = "", ""
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := p.cfg.Clock.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		fl, status := f, ""
		if isGRPC(r) {
			fl.protocol = "grpc"
			status = grpcStatusOf(w.Header())
		}
		p.countRequestGRPC(fl, rec.code, status, start)
	})
	l := &oneConnListener{c: c, closed: make(chan struct{})}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           handler,
		Protocols:         protocols,
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       5 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				l.Close()
			}
		},
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	_ = srv.Serve(l)
}

// transportKey names a routed requests' transport: one client pod, whose
// address the destination is told (Forwarded) and whose identity its
// connections carry.
type transportKey struct {
	id     Identity
	client netip.Addr
}

// clientTransports send one client pod's routed requests: HTTP/1.1, and
// HTTP/2 without TLS (h2c: gRPC, and h2c Service ports).
type clientTransports struct {
	h1, h2c *http.Transport
}

func (t *clientTransports) closeIdle() {
	t.h1.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}

// transportFor are the transports of requests from the pod at client, of
// identity id: their connections go through the mesh to enrolled
// endpoints, directly to others, and are pooled per client pod.
func (p *Proxy) transportFor(id Identity, client netip.Addr) *clientTransports {
	p.transportsMu.Lock()
	defer p.transportsMu.Unlock()
	key := transportKey{id: id, client: client}
	if t := p.transports[key]; t != nil {
		return t
	}
	h1 := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return p.dialAs(ctx, id, addr, client)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	h2c := h1.Clone()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	t := &clientTransports{h1: h1, h2c: h2c}
	if p.transports == nil {
		p.transports = map[transportKey]*clientTransports{}
	}
	p.transports[key] = t
	return t
}

// pruneTransports drops the transports of client pods that are no longer
// enrolled on this node.
func (p *Proxy) pruneTransports(local []*corev1.Pod) {
	keep := map[transportKey]bool{}
	for _, pod := range local {
		keep[transportKey{id: IdentityOf(pod), client: podAddr(pod)}] = true
	}
	p.transportsMu.Lock()
	defer p.transportsMu.Unlock()
	for k, t := range p.transports {
		if !keep[k] {
			t.closeIdle()
			delete(p.transports, k)
		}
	}
}

// dialAs connects to an endpoint as id: through a tunnel when it is an
// enrolled pod, directly otherwise.
func (p *Proxy) dialAs(ctx context.Context, id Identity, addr string, client netip.Addr) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	d, err := Route(p.world, ap, pick)
	if err != nil {
		return nil, err
	}
	if !d.Mesh {
		return (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", d.Addr.String())
	}
	node, err := netip.ParseAddr(d.Pod.Status.HostIP)
	if err != nil {
		return nil, err
	}
	cert, roots, err := p.ids.Get(ctx, id, certWait)
	if err != nil {
		return nil, err
	}
	dst := IdentityOf(d.Pod)
	// The stream outlives the dial's context: it is the pooled
	// connection's.
	s, err := p.tunnels.open(context.WithoutCancel(ctx), tunnelKey{src: id, dst: dst, node: node}, clientTLS(cert, roots, dst, p.cfg.TrustDomain), d.Addr, client, "")
	if err != nil {
		return nil, err
	}
	return &streamConn{stream: s, local: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0)), remote: net.TCPAddrFromAddrPort(d.Addr)}, nil
}

// streamConn is a tunnel stream as a net.Conn (for http.Transport).
type streamConn struct {
	*stream
	local, remote net.Addr
}

func (c *streamConn) LocalAddr() net.Addr              { return c.local }
func (c *streamConn) RemoteAddr() net.Addr             { return c.remote }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// prefixConn is a net.Conn whose reads come from r (a sniffed connection).
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// oneConnListener hands out one connection, then waits to be closed.
type oneConnListener struct {
	mu     sync.Mutex // guards c
	c      net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

// statusRecorder notes the status code a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
