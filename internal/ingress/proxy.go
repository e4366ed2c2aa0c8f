package ingress

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
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

	seeds    *lockedRand     // draws a seed for each balancer
	upstream *http.Transport // speaks to the endpoints

	inFlight sync.Map // endpoint address → *atomic.Int64
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
	}
	// Environment proxy settings are not used: endpoints are pod IPs.
	p.upstream = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       IdleTimeout,
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &transport{p: p, base: p.upstream},
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetTable makes t the table for every request from now on.
func (p *Proxy) SetTable(t *Table) {
	p.table.Store(t)
	live := t.Endpoints()
	p.health.Retain(live)
	p.inFlight.Range(func(k, _ any) bool {
		if _, found := slices.BinarySearch(live, k.(string)); !found {
			p.inFlight.Delete(k)
		}
		return true
	})
}

// CloseIdleConnections closes the idle connections to endpoints; call it
// after the servers have shut down so that no goroutine outlives them.
func (p *Proxy) CloseIdleConnections() { p.upstream.CloseIdleConnections() }

// Table returns the current table, nil before the first SetTable.
func (p *Proxy) Table() *Table { return p.table.Load() }

// Server returns an http.Server serving p with the hardening limits: over
// TLS (HTTP/1.1 and HTTP/2, certificates from TLSConfig) when secure, else
// plain HTTP/1.1 and h2c.
func (p *Proxy) Server(secure bool) *http.Server {
	s := &http.Server{
		Handler:           p,
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
		s.TLSConfig = p.TLSConfig()
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
func (p *Proxy) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if t := p.table.Load(); t != nil {
				if c := t.Certificate(hello.ServerName); c != nil {
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
	in      *http.Request
	route   *Route
	ep      Endpoint // current endpoint
	tried   []netip.AddrPort
	status  int // upstream's status, 0 before an answer
	counter *atomic.Int64
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

// ServeHTTP routes r by host and path and proxies it to an endpoint.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	var x *exchange
	var route *Route
	defer func() { p.observe(r, rec, route, x, time.Since(start)) }()

	t := p.table.Load()
	if t == nil {
		plainError(rec, http.StatusServiceUnavailable, "ingress routes are not loaded yet")
		return
	}
	route = t.Match(r.Host, r.URL.Path)
	if route == nil {
		plainError(rec, http.StatusNotFound, fmt.Sprintf("no ingress rule matches host %q path %q", hostOnly(r.Host), r.URL.Path))
		return
	}
	if route.SSLRedirect && r.TLS == nil {
		p.redirect(rec, r)
		return
	}
	be := route.Backend
	if be.Missing != "" {
		plainError(rec, http.StatusServiceUnavailable, be.Missing)
		return
	}
	ep, ok := p.pick(be, r, nil)
	if !ok {
		plainError(rec, http.StatusServiceUnavailable, "no healthy endpoint for service "+be.Name())
		return
	}
	x = &exchange{in: r, route: route}
	p.use(x, ep)
	defer func() { x.counter.Add(-1) }()
	labels := []string{route.Ingress.Namespace, route.Ingress.Name, be.Service}
	p.metrics.inFlight.WithLabelValues(labels...).Inc()
	defer p.metrics.inFlight.WithLabelValues(labels...).Dec()
	p.rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
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
// balancer's choice.
func (p *Proxy) pick(be *Backend, r *http.Request, exclude []netip.AddrPort) (Endpoint, bool) {
	cands := make([]Candidate, 0, len(be.Endpoints))
	for _, ep := range be.Endpoints {
		addr := ep.Addr.String()
		if slices.Contains(exclude, ep.Addr) || !p.health.Healthy(addr) {
			continue
		}
		cands = append(cands, Candidate{Endpoint: ep, InFlight: p.counter(addr).Load()})
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
	pr.SetXForwarded()
}

// modifyResponse sets or renews the affinity cookie.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	if x == nil {
		return nil
	}
	x.status = resp.StatusCode
	name := x.route.Backend.Policy.AffinityCookie
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

// errUpstreamTimeout is the cause of a request cut by the read timeout.
var errUpstreamTimeout = errors.New("upstream timeout")

// errorHandler answers a request the upstream did not: 504 on timeout, 502
// otherwise, saying which endpoint failed.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	where := fmt.Sprintf("%s (service %s/%s)", x.ep, x.route.Backend.Namespace, x.route.Backend.Service)
	switch {
	case errors.Is(err, errUpstreamTimeout):
		plainError(w, http.StatusGatewayTimeout, fmt.Sprintf("upstream timeout: %s sent no response within %v", where, x.route.Backend.Policy.ReadTimeout))
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

// retryable tells whether a request that could not connect may go to
// another endpoint: a bodiless GET, HEAD or OPTIONS.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Body == nil || r.Body == http.NoBody
	}
	return false
}

// transport sends a request to its endpoint with the read timeout, feeds
// passive health, and retries a retryable request once on another endpoint
// when the connect fails.
type transport struct {
	p    *Proxy
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeFrom(req.Context())
	if x == nil {
		return t.base.RoundTrip(req)
	}
	for {
		resp, err := t.try(req, x)
		if err == nil || !isConnectError(err) || len(x.tried) > 1 || !retryable(req) {
			return resp, err
		}
		ep, ok := t.p.pick(x.route.Backend, x.in, x.tried)
		if !ok {
			return nil, err
		}
		t.p.use(x, ep)
		req = req.Clone(req.Context())
		req.URL.Host = ep.String()
	}
}

func (t *transport) try(req *http.Request, x *exchange) (*http.Response, error) {
	be := x.route.Backend
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(be.Policy.ReadTimeout, func() { cancel(errUpstreamTimeout) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
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
func (p *Proxy) observe(r *http.Request, rec *recorder, route *Route, x *exchange, d time.Duration) {
	status := rec.status
	if status == 0 && x != nil {
		status = x.status // a hijacked (upgraded) connection
	}
	var ns, ing, svc string
	if route != nil {
		ns, ing, svc = route.Ingress.Namespace, route.Ingress.Name, route.Backend.Service
	}
	p.metrics.requests.WithLabelValues(ns, ing, svc, strconv.Itoa(status)).Inc()
	p.metrics.duration.WithLabelValues(ns, ing, svc).Observe(d.Seconds())
	if !p.cfg.AccessLog {
		return
	}
	upstream := ""
	if x != nil {
		upstream = x.ep.String()
	}
	p.cfg.Log.Info("request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
		"status", status, "bytes", rec.bytes, "duration", d, "upstream", upstream,
		"ingress", ns+"/"+ing, "client", r.RemoteAddr, "proto", r.Proto)
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
