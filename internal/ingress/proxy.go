package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/changes"
)

// Server hardening limits.
const (
	ReadHeaderTimeout = 10 * time.Second
	MaxHeaderBytes    = 64 << 10
	IdleTimeout       = 90 * time.Second
)

// ProxyConfig configures a Proxy; NewProxy applies the defaults.
type ProxyConfig struct {
	// Clock times endpoint ejections (default: the real clock).
	Clock clock.PassiveClock
	// Rand seeds the random balancers (default: seeded from the system).
	Rand rand.Source
	// EjectAfter is the number of consecutive failures that ejects an
	// endpoint (default 5).
	EjectAfter int
	// DialTimeout bounds connecting to an endpoint (default 5 s).
	DialTimeout time.Duration
	// HTTPSPort is the port HTTP→HTTPS redirects name; 0 or 443 names none.
	HTTPSPort int
	// Registerer receives the proxy's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// AccessLog logs one line per request at Info level.
	AccessLog bool
	Log       *slog.Logger
}

// Proxy is the reverse proxy serving a Table: an http.Handler for both the
// HTTP and the HTTPS listener.
type Proxy struct {
	cfg         ProxyConfig
	health      *Health
	metrics     *metrics
	rp          *httputil.ReverseProxy
	defaultCert *tls.Certificate

	// table is the current Table; SetTable replaces it whole, and a request
	// keeps the one it loaded first.
	table atomic.Pointer[Table]
	// tableSet is notified by SetTable (RunHealthChecks waits on it).
	tableSet *changes.Signal

	seeds    *lockedRand     // draws a seed for each balancer
	upstream *http.Transport // speaks to the endpoints
	h2c      *http.Transport // speaks HTTP/2 in cleartext to H2C backends
	h1       *h1Upstream     // speaks HTTP/1.1 for bodiless requests, without the Transport's goroutines

	inFlight sync.Map // endpoint address → *atomic.Int64
	// tls are the transports of BackendTLSPolicies, by BackendTLS.ID.
	tls sync.Map
	// budgets are the Services' retry budget states, by namespace/name.
	budgets sync.Map
}

// tlsTransport is the transport that speaks bt's TLS to endpoints (HTTP/2
// or HTTP/1.1, as the endpoint offers).
func (p *Proxy) tlsTransport(bt *BackendTLS) http.RoundTripper {
	if t, ok := p.tls.Load(bt.ID); ok {
		return t.(*http.Transport)
	}
	t := p.upstream.Clone()
	t.TLSClientConfig = bt.Config.Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetHTTP2(true)
	got, _ := p.tls.LoadOrStore(bt.ID, t)
	return got.(*http.Transport)
}

var _ http.Handler = (*Proxy)(nil)

// NewProxy returns a Proxy with no table: it answers 503 until SetTable.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	cert, err := selfSigned(time.Now())
	if err != nil {
		return nil, fmt.Errorf("ingress: default certificate: %w", err)
	}
	p := &Proxy{
		cfg:         cfg,
		health:      NewHealth(cfg.Clock, cfg.EjectAfter),
		metrics:     m,
		defaultCert: cert,
		seeds:       &lockedRand{r: rand.New(cfg.Rand)},
		tableSet:    changes.New(),
	}
	// Environment proxy settings are not used: endpoints are pod IPs.
	p.upstream = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       IdleTimeout,
		ExpectContinueTimeout: time.Second,
	}
	p.h1 = &h1Upstream{dial: p.upstream.DialContext, maxIdle: p.upstream.MaxIdleConnsPerHost, idleTimeout: IdleTimeout}
	p.h2c = p.upstream.Clone()
	p.h2c.Protocols = new(http.Protocols)
	p.h2c.Protocols.SetUnencryptedHTTP2(true)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &transport{p: p, base: p.upstream},
		FlushInterval:  0, // streaming (unknown length) responses are flushed as they come anyway
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     copyBuffers{},
		ErrorLog:       slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetTable makes t the table for every request from now on.
func (p *Proxy) SetTable(t *Table) {
	p.table.Store(t)
	p.tableSet.Notify()
	live := t.Endpoints()
	p.health.Retain(live)
	p.h1.retain(live)
	// The transports of BackendTLSPolicies no longer in use go.
	p.tls.Range(func(id, tr any) bool {
		if !t.backendTLS[id.(string)] {
			p.tls.Delete(id)
			tr.(*http.Transport).CloseIdleConnections()
		}
		return true
	})
	p.inFlight.Range(func(k, _ any) bool {
		if _, found := slices.BinarySearch(live, k.(string)); !found {
			p.inFlight.Delete(k)
		}
		return true
	})
}

// CloseIdleConnections closes the idle connections to endpoints; call it
// after the servers have shut down so that no goroutine outlives them.
func (p *Proxy) CloseIdleConnections() {
	p.upstream.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
	p.tls.Range(func(_, t any) bool { t.(*http.Transport).CloseIdleConnections(); return true })
	p.h1.CloseIdleConnections()
}

// Table returns the current table, nil before the first SetTable.
func (p *Proxy) Table() *Table { return p.table.Load() }

// Server returns an http.Server serving p with the hardening limits: over
// TLS (HTTP/1.1 and HTTP/2, certificates from TLSConfig) when secure, else
// plain HTTP/1.1 and h2c.
func (p *Proxy) Server(secure bool) *http.Server {
	port := HTTPPort
	if secure {
		port = HTTPSPort
	}
	return p.ServerFor(port, secure)
}

// ServerFor returns the http.Server of the listener on port (a Gateway
// listener's port, or HTTPPort and HTTPSPort for Ingresses).
func (p *Proxy) ServerFor(port int, secure bool) *http.Server {
	s := &http.Server{
		Handler:           p.Handler(port),
		ReadHeaderTimeout: ReadHeaderTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		IdleTimeout:       IdleTimeout,
		ConnState:         p.connState,
		ErrorLog:          slog.NewLogLogger(p.cfg.Log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
	}
	s.Protocols.SetHTTP1(true)
	if secure {
		s.Protocols.SetHTTP2(true)
		s.TLSConfig = p.TLSConfigFor(port)
	} else {
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	return s
}

// connState counts client connections.
func (p *Proxy) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		p.metrics.connections.Inc()
	case http.StateClosed, http.StateHijacked:
		p.metrics.connections.Dec()
	}
}

// TLSConfig returns the HTTPS listener's configuration: certificates chosen
// by SNI from the current table, else the default self-signed one.
func (p *Proxy) TLSConfig() *tls.Config { return p.TLSConfigFor(HTTPSPort) }

// TLSConfigFor is TLSConfig for the listener on port.
func (p *Proxy) TLSConfigFor(port int) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if t := p.table.Load(); t != nil {
				var local net.Addr
				if hello.Conn != nil {
					local = hello.Conn.LocalAddr()
				}
				if c := t.CertificateAt(local, port, hello.ServerName); c != nil {
					return c, nil
				}
			}
			return p.defaultCert, nil
		},
	}
}

// exchange is one client request on its way to an endpoint, carried in the
// outbound request's context.
type exchange struct {
	in    *http.Request
	route *Route
	be    *Backend // the backend chosen for the request
	// beHeaders is the chosen backendRef's own header modifier.
	beHeaders *HeaderModifier
	ep        Endpoint // current endpoint
	tried     []netip.AddrPort
	status    int // upstream's status, 0 before an answer
	counter   *atomic.Int64
	// via, when set, sends the request instead of the proxy's
	// transports: the mesh's transports of the client's identity.
	via *meshVia
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// use moves x's in-flight count to ep.
func (p *Proxy) use(x *exchange, ep Endpoint) {
	if x.counter != nil {
		x.counter.Add(-1)
	}
	x.ep = ep
	x.tried = append(x.tried, ep.Addr)
	x.counter = p.counter(ep.Addr.String())
	x.counter.Add(1)
}

func (p *Proxy) counter(addr string) *atomic.Int64 {
	c, _ := p.inFlight.LoadOrStore(addr, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// ServeHTTP serves r as arriving on the Ingress port for its scheme
// (HTTPPort or HTTPSPort).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	port := HTTPPort
	if r.TLS != nil {
		port = HTTPSPort
	}
	p.serve(port, w, r)
}

// Handler returns the handler of the listener on port.
func (p *Proxy) Handler(port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(port, w, r) })
}

// serve routes r by port, host, path and the rest of an HTTPRoute's
// matches, and proxies it to an endpoint.
func (p *Proxy) serve(port int, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	var x *exchange
	var route *Route
	defer func() { p.observe(r, rec, route, x, time.Since(start), false) }()

	t := p.table.Load()
	if t == nil {
		plainError(rec, http.StatusServiceUnavailable, "ingress routes are not loaded yet")
		return
	}
	if t.Misdirected(port, r) {
		plainError(rec, http.StatusMisdirectedRequest, fmt.Sprintf("host %q is served by another listener than the TLS server name %q; open a new connection", hostOnly(r.Host), r.TLS.ServerName))
		return
	}
	route = t.MatchRequest(port, r)
	if route == nil {
		plainError(rec, http.StatusNotFound, fmt.Sprintf("no route matches host %q path %q", hostOnly(r.Host), r.URL.Path))
		return
	}
	if route.SSLRedirect && r.TLS == nil {
		p.redirect(rec, r)
		return
	}
	x = p.forward(rec, r, port, route, nil)
}

// forward carries out what route says for r, which arrived on port (the
// port redirects keep): its rule's filters, redirect, timeout and mirrors,
// then the pick of a backend and of an endpoint of it, and the proxying
// with the rule's retries. via sends to the endpoints when set (the
// mesh's transport of the client's identity, used alone); nil uses the
// proxy's own transports. It returns the exchange once a request went
// upstream, nil when forward answered itself.
func (p *Proxy) forward(rec *recorder, r *http.Request, port int, route *Route, via *meshVia) *exchange {
	be := route.Backend
	var beHeaders *HeaderModifier
	if rule := route.Rule; rule != nil {
		switch {
		case rule.Invalid != "":
			plainError(rec, http.StatusInternalServerError, rule.Invalid)
			return nil
		case rule.Redirect != nil:
			redirectTo(rec, r, port, route, rule.Redirect)
			return nil
		case rule.CORS.preflight(rec, r):
			return nil
		}
		i := rule.picker.pick()
		if i < 0 {
			plainError(rec, http.StatusInternalServerError, "the rule has no backend")
			return nil
		}
		be = rule.Backends[i].Backend
		beHeaders = rule.Backends[i].RequestHeaders
		if be.Missing != "" {
			plainError(rec, http.StatusInternalServerError, be.Missing)
			return nil
		}
		if via != nil && be.TLS != nil {
			// The mesh's transport takes plain HTTP requests; TLS to
			// the endpoints would have to be spoken inside its tunnels.
			plainError(rec, http.StatusInternalServerError, fmt.Sprintf("backend %s has a BackendTLSPolicy, which skiff does not apply to requests of the mesh", be.Name()))
			return nil
		}
		if rule.Timeout > 0 {
			ctx, cancel := context.WithTimeoutCause(r.Context(), rule.Timeout, errRequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		var body []byte
		var stream *mirrorStream
		buffered, small := false, true
		for _, m := range rule.Mirrors {
			if m.Fraction < 1 && rand.Float64() >= m.Fraction {
				continue
			}
			if !buffered {
				// A body of up to 64 KiB is read first, and each mirror
				// gets a copy; a longer one is streamed to the mirrors as
				// the backend reads it.
				body, small = bufferBody(r)
				buffered = true
				if !small {
					stream = &mirrorStream{body: r.Body}
					r.Body = stream
					defer stream.Close()
				}
			}
			if small {
				p.mirror(m.Backend, r, bytes.NewReader(body), int64(len(body)), via)
			} else {
				p.mirror(m.Backend, r, stream.feed(), r.ContentLength, via)
			}
		}
	}
	if be.Missing != "" {
		plainError(rec, http.StatusServiceUnavailable, be.Missing)
		return nil
	}
	ep, ok := p.pick(be, r, nil)
	if !ok {
		plainError(rec, http.StatusServiceUnavailable, "no healthy endpoint for service "+be.Name())
		return nil
	}
	x := &exchange{in: r, route: route, be: be, beHeaders: beHeaders, via: via}
	p.use(x, ep)
	if b := be.Policy.RetryBudget; b != (RetryBudget{}) {
		p.budgetOf(be).request(b, p.cfg.Clock.Now())
	}
	defer func() { x.counter.Add(-1) }()
	if via == nil {
		labels := []string{route.Kind, route.Source.Namespace, route.Source.Name, be.Service}
		p.metrics.inFlight.WithLabelValues(labels...).Inc()
		defer p.metrics.inFlight.WithLabelValues(labels...).Dec()
	}
	p.rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
	return x
}

// mirror sends a copy of r, with body (of length bytes; -1 if unknown)
// as its body, to an endpoint of be, in the background, through via when
// set (else the proxy's transport); its answer is dropped.
func (p *Proxy) mirror(be *Backend, r *http.Request, body io.Reader, length int64, via *meshVia) {
	if be.Missing != "" {
		return
	}
	ep, ok := p.pick(be, r, nil)
	if !ok {
		return
	}
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", ep.String()
	out.Body, out.ContentLength, out.TransferEncoding = http.NoBody, 0, nil
	if length != 0 {
		// A Body with ContentLength 0 is sent chunked: length unknown.
		// A streamed body's pipe is closed with the request, so that its
		// feed does not wait for a reader that is gone.
		rc, ok := body.(io.ReadCloser)
		if !ok {
			rc = io.NopCloser(body)
		}
		out.Body, out.ContentLength = rc, max(length, 0)
	}
	var rt http.RoundTripper = p.upstream
	if via != nil {
		rt = via.transport(be, r)
	}
	go func() {
		ctx, cancel := context.WithTimeout(out.Context(), mirrorTimeout)
		defer cancel()
		resp, err := rt.RoundTrip(out.WithContext(ctx))
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
	}()
}

// mirrorTimeout bounds a mirrored request.
const mirrorTimeout = 10 * time.Second

// maxMirrorLag is how far a mirror may fall behind the backend in reading
// a streamed body before it is dropped (its request aborted): a mirror
// never slows the backend's request down.
const maxMirrorLag = 1 << 20

// errMirrorBehind aborts a mirror that fell maxMirrorLag behind, or whose
// original request ended before its body was read whole.
var errMirrorBehind = errors.New("mirror dropped: the request's body went on without it")

// mirrorStream is a request's body that hands each chunk the backend
// reads to the mirrors' bodies (feeds) as well.
type mirrorStream struct {
	body  io.ReadCloser
	feeds []*mirrorFeed // each safe to use from the transport and the handler at once
}

// mirrorFeed is one mirror's body: the chunks not yet written into the
// pipe its request reads, and a goroutine writing them.
type mirrorFeed struct {
	pw   *io.PipeWriter
	wake chan struct{} // a chunk or the end is queued

	mu     sync.Mutex
	queue  [][]byte
	lag    int // bytes queued
	done   bool
	err    error // with done: nil, the body is whole
	broken bool  // the mirror's request stopped reading
}

// feed adds a mirror and returns the body its request is to read.
func (m *mirrorStream) feed() io.Reader {
	pr, pw := io.Pipe()
	f := &mirrorFeed{pw: pw, wake: make(chan struct{}, 1)}
	m.feeds = append(m.feeds, f)
	go f.run()
	return pr
}

// run writes the queued chunks into the pipe until the end is queued or
// the mirror's request stops reading.
func (f *mirrorFeed) run() {
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			c := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			_, err := f.pw.Write(c)
			f.mu.Lock()
			f.lag -= len(c)
			if err != nil {
				f.broken, f.queue = true, nil
				f.mu.Unlock()
				return
			}
			f.mu.Unlock()
			continue
		}
		if f.done {
			err := f.err
			f.mu.Unlock()
			f.pw.CloseWithError(err)
			return
		}
		f.mu.Unlock()
		<-f.wake
	}
}

// push queues a copy of c, or drops the mirror if it is maxMirrorLag
// behind; it never waits.
func (f *mirrorFeed) push(c []byte) {
	f.mu.Lock()
	if f.done || f.broken {
		f.mu.Unlock()
		return
	}
	if f.lag+len(c) > maxMirrorLag {
		f.mu.Unlock()
		f.finish(errMirrorBehind)
		return
	}
	f.queue = append(f.queue, bytes.Clone(c))
	f.lag += len(c)
	f.mu.Unlock()
	f.signal()
}

// finish queues the end of the body: nil when it is whole, else the error
// that ends the mirror's request.
func (f *mirrorFeed) finish(err error) {
	f.mu.Lock()
	if !f.done {
		f.done, f.err = true, err
	}
	f.mu.Unlock()
	f.signal()
}

func (f *mirrorFeed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// lagging is the number of bytes queued for the mirror.
func (f *mirrorFeed) lagging() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lag
}

func (m *mirrorStream) Read(b []byte) (int, error) {
	n, err := m.body.Read(b)
	for _, f := range m.feeds {
		if n > 0 {
			f.push(b[:n])
		}
		switch {
		case err == io.EOF:
			f.finish(nil)
		case err != nil:
			f.finish(err)
		}
	}
	return n, err
}

// Close ends the feeds that have not seen the end of the body (the
// backend did not read it whole), then closes the body.
func (m *mirrorStream) Close() error {
	for _, f := range m.feeds {
		f.finish(errMirrorBehind)
	}
	return m.body.Close()
}

// redirectTo answers with an HTTPRoute RequestRedirect: the request's URL
// with the filter's scheme, hostname, port and path.
func redirectTo(w http.ResponseWriter, r *http.Request, port int, route *Route, f *Redirect) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if f.Scheme != "" {
		scheme = f.Scheme
	}
	host := hostOnly(r.Host)
	if f.Hostname != "" {
		host = f.Hostname
	}
	switch {
	case f.Port != 0:
		port = f.Port
	case f.Scheme != "":
		port = 0 // the scheme's well-known port
	}
	if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) {
		port = 0
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	if port != 0 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
	}
	u := url.URL{Scheme: scheme, Host: host, Path: modifyPath(r.URL.Path, route, f.Path), RawQuery: r.URL.RawQuery}
	w.Header().Set("Location", u.String())
	w.WriteHeader(f.StatusCode)
}

// modifyPath applies m to path, which route matched; nil m keeps it.
func modifyPath(path string, route *Route, m *PathModifier) string {
	switch {
	case m == nil:
		return path
	case m.Full != nil:
		return *m.Full
	case m.Prefix != nil && route.PathType == networkingv1.PathTypePrefix:
		rest := strings.TrimPrefix(path, strings.TrimSuffix(route.Path, "/"))
		out := strings.TrimSuffix(*m.Prefix, "/") + rest
		if !strings.HasPrefix(out, "/") {
			out = "/" + out
		}
		return out
	case m.Prefix != nil:
		return *m.Prefix
	}
	return path
}

// applyHeaders applies a header modifier to h.
func applyHeaders(h http.Header, m *HeaderModifier) {
	if m == nil {
		return
	}
	for _, v := range m.Set {
		h.Set(v.Name, v.Value)
	}
	for _, v := range m.Add {
		h.Add(v.Name, v.Value)
	}
	for _, n := range m.Remove {
		h.Del(n)
	}
}

// redirect answers a plain HTTP request with a 308 to its HTTPS URL.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	if port := p.cfg.HTTPSPort; port != 0 && port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(port))
	} else if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// pick chooses a healthy endpoint of be for r, not among exclude: the one
// its affinity cookie names while that one is still a candidate, else the
// balancer's choice. When passive outlier detection has ejected more of
// the candidates than it left (Envoy's panic threshold of 50 %), it
// balances over the ejected ones too rather than pile every request onto
// the few left, or answer 503 for a backend whose only pod answers errors.
// An endpoint failing its active health check is never a candidate.
func (p *Proxy) pick(be *Backend, r *http.Request, exclude []netip.AddrPort) (Endpoint, bool) {
	cands := make([]Candidate, 0, len(be.Endpoints))
	var ejected []Candidate
	for _, ep := range be.Endpoints {
		addr := ep.Addr.String()
		if slices.Contains(exclude, ep.Addr) {
			continue
		}
		down, out := p.health.State(addr)
		if down {
			continue
		}
		c := Candidate{Endpoint: ep, InFlight: p.counter(addr).Load()}
		if out {
			ejected = append(ejected, c)
		} else {
			cands = append(cands, c)
		}
	}
	if len(ejected) > len(cands) {
		cands = append(cands, ejected...)
	}
	if len(cands) == 0 {
		return Endpoint{}, false
	}
	pol := be.Policy
	if pol.AffinityCookie != "" {
		if c, err := r.Cookie(pol.AffinityCookie); err == nil {
			for _, cand := range cands {
				if endpointID(cand.Addr) == c.Value {
					return cand.Endpoint, true
				}
			}
		}
	}
	be.once.Do(func() {
		src := rand.NewPCG(p.seeds.uint64(), p.seeds.uint64())
		be.balancer = NewBalancer(pol.Balance, be.Endpoints, src)
	})
	return cands[be.balancer.Pick(cands, hashKeyOf(pol, r))].Endpoint, true
}

// hashKeyOf is r's consistent-hash key under pol; "" when the policy hashes
// nothing or r lacks the header or cookie.
func hashKeyOf(pol Policy, r *http.Request) string {
	if pol.Balance != ConsistentHash {
		return ""
	}
	switch pol.HashOn {
	case HashHeader:
		return r.Header.Get(pol.HashName)
	case HashCookie:
		if c, err := r.Cookie(pol.HashName); err == nil {
			return c.Value
		}
		return ""
	default:
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
}

// endpointID is the opaque affinity-cookie value naming an endpoint.
func endpointID(a netip.AddrPort) string {
	sum := sha256.Sum256([]byte("skiff-affinity " + a.String()))
	return hex.EncodeToString(sum[:8])
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	pr.SetURL(&url.URL{Scheme: "http", Host: x.ep.String()})
	pr.Out.Host = pr.In.Host
	if x.via == nil {
		pr.SetXForwarded()
	} else {
		// The mesh passes requests on as their clients sent them: the
		// forwarding headers Rewrite removed go back.
		for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v, ok := pr.In.Header[h]; ok {
				pr.Out.Header[h] = v
			}
		}
	}
	if rule := x.route.Rule; rule != nil {
		applyHeaders(pr.Out.Header, rule.RequestHeaders)
		applyHeaders(pr.Out.Header, x.beHeaders)
		if rw := rule.Rewrite; rw != nil {
			if rw.Hostname != "" {
				pr.Out.Host = rw.Hostname
			}
			if rw.Path != nil {
				pr.Out.URL.Path = modifyPath(pr.In.URL.Path, x.route, rw.Path)
				pr.Out.URL.RawPath = ""
			}
		}
	}
}

// modifyResponse sets or renews the affinity cookie.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	if x == nil {
		return nil
	}
	x.status = resp.StatusCode
	if rule := x.route.Rule; rule != nil {
		applyHeaders(resp.Header, rule.ResponseHeaders)
		rule.CORS.respond(resp.Header, x.in.Header.Get("Origin"))
	}
	name := x.be.Policy.AffinityCookie
	if name == "" {
		return nil
	}
	id := endpointID(x.ep.Addr)
	if c, err := x.in.Cookie(name); err == nil && c.Value == id {
		return nil
	}
	c := &http.Cookie{Name: name, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	resp.Header.Add("Set-Cookie", c.String())
	return nil
}

// errUpstreamTimeout is the cause of a request cut by the read timeout;
// errRequestTimeout of one cut by its HTTPRoute's request timeout.
var (
	errUpstreamTimeout = errors.New("upstream timeout")
	errRequestTimeout  = errors.New("request timeout")
	// errRetryBudget ends a request whose retry its Service's retry
	// budget does not allow.
	errRetryBudget = errors.New("retry budget exhausted")
)

// errorHandler answers a request the upstream did not: 504 on timeout, 502
// otherwise, saying which endpoint failed.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	where := fmt.Sprintf("%s (service %s/%s)", x.ep, x.be.Namespace, x.be.Service)
	switch {
	case errors.Is(err, errRetryBudget):
		// The Gateway API's answer once the budget is spent: 503.
		plainError(w, http.StatusServiceUnavailable, fmt.Sprintf("retry budget exhausted: service %s/%s allows %v, and %s failed", x.be.Namespace, x.be.Service, x.be.Policy.RetryBudget, x.ep))
	case errors.Is(err, errUpstreamTimeout):
		plainError(w, http.StatusGatewayTimeout, fmt.Sprintf("upstream timeout: %s sent no response within %v", where, x.be.Policy.ReadTimeout))
	case errors.Is(context.Cause(r.Context()), errRequestTimeout):
		plainError(w, http.StatusGatewayTimeout, fmt.Sprintf("request timeout: the route allows %v and %s had not answered", x.route.Rule.Timeout, where))
	case isConnectError(err):
		plainError(w, http.StatusBadGateway, fmt.Sprintf("upstream connect error to %s: %v", where, err))
	default:
		plainError(w, http.StatusBadGateway, fmt.Sprintf("upstream error from %s: %v", where, err))
	}
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// copyBuffers are the ReverseProxy's body-copy buffers, reused: without a
// pool it allocates 32 KiB per request.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte  { return copyBufferPool.Get().(*[32 << 10]byte)[:] }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put((*[32 << 10]byte)(b)) }

// retryable tells whether a request that could not connect may go to
// another endpoint: a bodiless GET, HEAD or OPTIONS.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Body == nil || r.Body == http.NoBody
	}
	return false
}

// maxReplayBody is the largest request body kept to send again on a retry
// an HTTPRoute's retry policy asks for; a larger one is streamed, once.
const maxReplayBody = 64 << 10

// transport sends a request to its endpoint with the read timeout, feeds
// passive health, and retries: by the route rule's retry policy when it
// has one, else a retryable request once on another endpoint when the
// connect fails.
type transport struct {
	p    *Proxy
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeFrom(req.Context())
	if x == nil {
		return t.base.RoundTrip(req)
	}
	var policy *Retry
	if rule := x.route.Rule; rule != nil {
		policy = rule.Retry
	}
	if policy == nil {
		for {
			resp, err := t.try(req, x)
			if err == nil || !isConnectError(err) || len(x.tried) > 1 || !retryable(req) {
				return resp, err
			}
			ep, ok := t.p.pick(x.be, x.in, x.tried)
			if !ok {
				return nil, err
			}
			req = t.moveTo(req, x, ep, nil)
		}
	}
	body, replayable := bufferBody(req)
	for retries := 0; ; retries++ {
		resp, err := t.try(req, x)
		again := err != nil && req.Context().Err() == nil || err == nil && slices.Contains(policy.Codes, resp.StatusCode)
		if !again || !replayable || retries >= policy.Attempts {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplayBody))
			resp.Body.Close()
		}
		if b := x.be.Policy.RetryBudget; b != (RetryBudget{}) && !t.p.budgetOf(x.be).retry(b, t.p.cfg.Clock.Now()) {
			t.p.metrics.retries.WithLabelValues(x.be.Namespace, x.be.Service, "budget_exhausted").Inc()
			return nil, errRetryBudget
		}
		t.p.metrics.retries.WithLabelValues(x.be.Namespace, x.be.Service, "sent").Inc()
		select {
		case <-time.After(policy.Backoff):
		case <-req.Context().Done():
			return nil, context.Cause(req.Context())
		}
		// Another endpoint when there is one, else the same again.
		ep, ok := t.p.pick(x.be, x.in, x.tried)
		if !ok {
			if ep, ok = t.p.pick(x.be, x.in, nil); !ok {
				ep = x.ep
			}
		}
		req = t.moveTo(req, x, ep, body)
	}
}

// moveTo makes ep x's endpoint and returns req for it, with body as its
// body when not nil.
func (t *transport) moveTo(req *http.Request, x *exchange, ep Endpoint, body []byte) *http.Request {
	t.p.use(x, ep)
	req = req.Clone(req.Context())
	req.URL.Host = ep.String()
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return req
}

// bufferBody reads req's body into memory when it is at most maxReplayBody
// long, so that a retry can send it again; a longer one goes on streaming
// (the bytes read first, then the rest) and is not retried.
func bufferBody(req *http.Request) (body []byte, replayable bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
	if err != nil || len(buf) > maxReplayBody {
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), errReader{err}, req.Body), req.Body}
		return nil, false
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(buf))
	return buf, true
}

// errReader fails every read with err, or reads nothing when err is nil.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

func (t *transport) try(req *http.Request, x *exchange) (*http.Response, error) {
	be := x.be
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(be.Policy.ReadTimeout, func() { cancel(errUpstreamTimeout) })
	base := t.base
	switch {
	case x.via != nil:
		// The mesh's transports, alone: their connections are the
		// client identity's (HTTP/1.1 or h2c inside its tunnels).
		base = x.via.transport(be, x.in)
	case be.TLS != nil:
		base = t.p.tlsTransport(be.TLS)
		u := *req.URL
		u.Scheme = "https"
		req = req.Clone(req.Context())
		req.URL = &u
	case be.H2C:
		base = t.p.h2c
	case t.p.h1.eligible(req):
		base = t.p.h1
	}
	resp, err := base.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() && err == nil {
		// The timeout fired as the answer arrived; its body is cut.
		resp.Body.Close()
		resp, err = nil, errUpstreamTimeout
	}
	if err != nil {
		if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
			err = errUpstreamTimeout
		}
		cancel(nil)
	}
	// ctx lives on with the response body; the client request's end
	// releases it.
	if req.Context().Err() == nil {
		ok := err == nil && resp.StatusCode < 500
		if t.p.health.Report(x.ep.String(), ok) {
			t.p.metrics.ejections.WithLabelValues(be.Namespace, be.Service).Inc()
			t.p.cfg.Log.Warn("ejected endpoint", "endpoint", x.ep.String(), "service", be.Namespace+"/"+be.Service)
		}
	}
	return resp, err
}

// observe records a finished request in the metrics and the access log.
// A request of the mesh (see MeshHandler) is only logged: the mesh counts
// it in its own metrics.
func (p *Proxy) observe(r *http.Request, rec *recorder, route *Route, x *exchange, d time.Duration, mesh bool) {
	status := rec.status
	if status == 0 && x != nil {
		status = x.status // a hijacked (upgraded) connection
	}
	var kind, ns, name, svc string
	if route != nil {
		kind, ns, name = route.Kind, route.Source.Namespace, route.Source.Name
	}
	if x != nil {
		svc = x.be.Service
	}
	if !mesh {
		p.metrics.requests.WithLabelValues(kind, ns, name, svc, strconv.Itoa(status)).Inc()
		p.metrics.duration.WithLabelValues(kind, ns, name, svc).Observe(d.Seconds())
	}
	if !p.cfg.AccessLog {
		return
	}
	upstream := ""
	if x != nil {
		upstream = x.ep.String()
	}
	attrs := []any{"method", r.Method, "host", r.Host, "path", r.URL.Path,
		"status", status, "bytes", rec.bytes, "duration", d, "upstream", upstream,
		"route", kind + " " + ns + "/" + name, "client", r.RemoteAddr, "proto", r.Proto}
	if mesh {
		attrs = append(attrs, "mesh", true)
	}
	p.cfg.Log.Info("request", attrs...)
}

// plainError answers with a plain-text body saying what failed.
func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// recorder notes the status and size of a response. Flush and Hijack reach
// the underlying writer through Unwrap.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
