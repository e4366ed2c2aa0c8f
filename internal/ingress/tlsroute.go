package ingress

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// StreamRoute is where a TLSRoute sends the TLS connections for one server
// name (SNI), or a TCPRoute the connections to its listener.
type StreamRoute struct {
	Kind   string // KindTLSRoute or KindTCPRoute
	Source types.NamespacedName
	Host   string
	// Terminate: the proxy completes the handshake with the listener's
	// certificate and forwards the plain stream; otherwise the client's
	// TLS goes to the backend untouched (passthrough).
	Terminate bool
	Rule      *RuleAction
}

// byServerName finds the entry of m for an SNI host: the exact host's, then
// the longest "*.suffix" wildcard's (Gateway API wildcards cover one or
// more labels), then "", the listener without a hostname.
func byServerName[V any](m map[string]V, host string) (V, bool) {
	k, ok := mostSpecific(m, host)
	return m[k], ok
}

// mostSpecific is the key of m that host falls under, in byServerName's
// order.
func mostSpecific[V any](m map[string]V, host string) (string, bool) {
	if _, ok := m[host]; ok {
		return host, true
	}
	for s := wildcardSuffix(host); s != ""; s = wildcardSuffix(s) {
		if _, ok := m["*."+s]; ok {
			return "*." + s, true
		}
	}
	_, ok := m[""]
	return "", ok
}

// MatchTLS tells where a TLS connection to local on port, for server name
// sni, goes: to a TLSRoute, to the port's HTTPS server (https), or, when
// neither, nowhere: a TLS listener claims the name but no route takes it,
// or the port serves no HTTPS.
func (t *Table) MatchTLS(local net.Addr, port int, sni string) (route *StreamRoute, https bool) {
	l := t.listenerAt(local, port)
	if l == nil {
		return nil, false
	}
	host := normalizeHost(strings.TrimSuffix(sni, "."))
	if r, ok := byServerName(l.tlsRoutes, host); ok {
		return r, false
	}
	if _, ok := byServerName(l.tlsListenerHosts, host); ok {
		return nil, false
	}
	return nil, l.https
}

// MatchPort returns the TCPRoute or UDPRoute serving connections or
// datagrams to local on port, nil when none does.
func (t *Table) MatchPort(local net.Addr, port int) *StreamRoute {
	if l := t.listenerAt(local, port); l != nil {
		return l.portRoute
	}
	return nil
}

// tlsPort tells whether a TLS listener serves port on any address: only
// then are its connections' ClientHellos read before the HTTPS server
// gets them.
func (t *Table) tlsPort(port int) bool {
	if l := t.ports[port]; l != nil && len(l.tlsListenerHosts) > 0 {
		return true
	}
	for _, ls := range t.byAddr {
		if l := ls[port]; l != nil && len(l.tlsListenerHosts) > 0 {
			return true
		}
	}
	return false
}

// tlsDemux is the listener of a TLS port as its HTTPS server sees it: it
// accepts the connections and, where the port has TLS listeners, reads
// each ClientHello and sends the connection where its server name leads —
// a TLSRoute's backend, the HTTPS server (Accept), or closed.
type tlsDemux struct {
	net.Listener
	p    *Proxy
	port int
	tcp  bool // a TCP listener's port: every connection goes to its TCPRoute

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	active map[net.Conn]struct{} // connections of TLSRoutes, closed with the listener
}

func newTLSDemux(ln net.Listener, p *Proxy, port int) *tlsDemux {
	return newDemux(ln, p, port, false)
}

// newTCPDemux serves a TCP listener's port: Accept is not used.
func newTCPDemux(ln net.Listener, p *Proxy, port int) *tlsDemux {
	return newDemux(ln, p, port, true)
}

func newDemux(ln net.Listener, p *Proxy, port int, tcp bool) *tlsDemux {
	d := &tlsDemux{Listener: ln, p: p, port: port, tcp: tcp, conns: make(chan net.Conn), done: make(chan struct{}), active: map[net.Conn]struct{}{}}
	go d.acceptLoop()
	return d
}

// acceptLoop accepts until the listener closes; a connection being routed
// ends on its own (read deadline, or the close of the route's).
func (d *tlsDemux) acceptLoop() {
	delay := 5 * time.Millisecond
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				d.Close()
				return
			}
			// Out of file descriptors, say: back off as net/http does.
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if d.tcp {
			go d.routeTCP(c)
			continue
		}
		t := d.p.Table()
		if t == nil || !t.tlsPort(d.port) {
			d.deliver(c)
			continue
		}
		go d.route(c)
	}
}

// Accept returns the next connection for the HTTPS server.
func (d *tlsDemux) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the TLSRoute connections.
func (d *tlsDemux) Close() error {
	var err error
	d.once.Do(func() {
		close(d.done)
		err = d.Listener.Close()
		d.mu.Lock()
		for c := range d.active {
			c.Close()
		}
		d.mu.Unlock()
	})
	return err
}

func (d *tlsDemux) deliver(c net.Conn) {
	select {
	case d.conns <- c:
	case <-d.done:
		c.Close()
	}
}

// route reads c's ClientHello and sends c on.
func (d *tlsDemux) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(ReadHeaderTimeout))
	sni, hello, err := readClientHello(c)
	c.SetReadDeadline(time.Time{})
	replay := &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(hello), c)}
	t := d.p.Table()
	if err != nil {
		// Not TLS, or cut short: the HTTPS server, if any, answers it as
		// it answers any bad handshake.
		sni = ""
	}
	rt, https := t.MatchTLS(c.LocalAddr(), d.port, sni)
	switch {
	case rt != nil && err == nil:
		if !d.track(c) {
			return
		}
		defer d.untrack(c)
		d.p.serveStream(replay, rt, d.port)
	case https:
		d.deliver(replay)
	default:
		c.Close()
	}
}

// routeTCP sends c to the TCPRoute of its address and port, or closes it.
func (d *tlsDemux) routeTCP(c net.Conn) {
	var rt *StreamRoute
	if t := d.p.Table(); t != nil {
		rt = t.MatchPort(c.LocalAddr(), d.port)
	}
	if rt == nil || !d.track(c) {
		c.Close()
		return
	}
	defer d.untrack(c)
	d.p.serveStream(c, rt, d.port)
}

func (d *tlsDemux) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		c.Close()
		return false
	default:
	}
	d.active[c] = struct{}{}
	return true
}

func (d *tlsDemux) untrack(c net.Conn) {
	d.mu.Lock()
	delete(d.active, c)
	d.mu.Unlock()
}

// errHelloRead stops the handshake readClientHello starts once the
// ClientHello is read.
var errHelloRead = errors.New("ClientHello read")

// readClientHello reads a TLS ClientHello from r and returns its server
// name and every byte read, for the connection to be replayed.
func readClientHello(r io.Reader) (string, []byte, error) {
	var buf bytes.Buffer
	var sni string
	err := tls.Server(helloConn{io.TeeReader(r, &buf)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			return nil, errHelloRead
		},
	}).Handshake()
	if errors.Is(err, errHelloRead) {
		err = nil
	}
	return sni, buf.Bytes(), err
}

// helloConn is the connection readClientHello's handshake runs on: it
// reads the client's bytes and discards what the handshake would answer.
type helloConn struct{ r io.Reader }

func (c helloConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (c helloConn) Write(p []byte) (int, error)    { return len(p), nil }
func (helloConn) Close() error                     { return nil }
func (helloConn) LocalAddr() net.Addr              { return nil }
func (helloConn) RemoteAddr() net.Addr             { return nil }
func (helloConn) SetDeadline(time.Time) error      { return nil }
func (helloConn) SetReadDeadline(time.Time) error  { return nil }
func (helloConn) SetWriteDeadline(time.Time) error { return nil }

// replayConn is a connection whose first bytes were already read: r gives
// them again, then the rest.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the underlying TCP connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// serveStream carries client's connection to an endpoint of rt's backends:
// the stream as it is, or, when rt terminates TLS, the plain stream after
// the handshake. A route that cannot be served (no backend resolves, none
// is ready) closes the connection.
func (p *Proxy) serveStream(client net.Conn, rt *StreamRoute, port int) {
	defer client.Close()
	ep, ok := p.streamEndpoint(rt, client.RemoteAddr())
	if !ok {
		return
	}
	p.metrics.connections.Inc()
	defer p.metrics.connections.Dec()
	if rt.Terminate {
		cfg := p.TLSConfigFor(port)
		cfg.NextProtos = nil
		tc := tls.Server(client, cfg)
		tc.SetDeadline(time.Now().Add(ReadHeaderTimeout))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		client = tc
	}
	upstream, err := net.DialTimeout("tcp", ep.Addr.String(), p.cfg.DialTimeout)
	if err != nil {
		p.cfg.Log.Debug("backend unreachable", "kind", rt.Kind, "route", rt.Source.String(), "endpoint", ep.Addr.String(), "err", err)
		return
	}
	defer upstream.Close()
	counter := p.counter(ep.Addr.String())
	counter.Add(1)
	defer counter.Add(-1)
	pipe(client, upstream)
}

// streamEndpoint picks the endpoint for a new connection or UDP session of
// rt from client: a backend by weight, then one of its ready endpoints (a
// consistent hash of the client's address, when the Service asks for it);
// false when the route cannot be served (no backend resolves, none is
// ready).
func (p *Proxy) streamEndpoint(rt *StreamRoute, client net.Addr) (Endpoint, bool) {
	a := rt.Rule
	if a == nil || a.Invalid != "" {
		return Endpoint{}, false
	}
	i := a.picker.pick()
	if i < 0 || a.Backends[i].Backend.Missing != "" {
		return Endpoint{}, false
	}
	// The request a balancer looks at: only the client's address.
	r := &http.Request{Header: http.Header{}}
	if client != nil {
		r.RemoteAddr = client.String()
	}
	return p.pick(a.Backends[i].Backend, r, nil)
}

// pipe copies both ways until both directions end, passing on half-closes.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
