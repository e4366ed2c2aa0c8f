package dns

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/changes"
)

// Config is the DNS server's configuration; New applies the defaults.
type Config struct {
	// ListenAddr is the host:port served over both UDP and TCP (required).
	// With port 0 the system picks one, the same for both; see Addr.
	ListenAddr string
	// ClusterDomain is the zone answered from the cluster (default
	// cluster.local).
	ClusterDomain string
	// Upstreams resolve every other name, "host" or "host:port" each
	// (default: the name servers in ResolvConf, see below).
	Upstreams []string
	// ResolvConf is where the default Upstreams are read (default
	// /etc/resolv.conf). Loopback stubs (127.0.0.0/8) count only when it names
	// nothing else, after systemd-resolved's list of real servers.
	ResolvConf string
	// TTL of the cluster's records (default 5 s, as CoreDNS's kubernetes
	// plugin), whole seconds.
	TTL time.Duration

	// Registerer receives the server's metrics (CoreDNS's names); nil
	// registers them nowhere.
	Registerer prometheus.Registerer

	Log *slog.Logger
}

var everything = labels.Everything()

var _ dns.Handler = (*Server)(nil)

// Server answers DNS questions; Run serves until its context ends.
type Server struct {
	cfg    Config
	client kubernetes.Interface
	fwd    *forwarder
	clock  clock.PassiveClock
	ttl    uint32

	// zone is the current Zone, replaced in full after every change.
	zone atomic.Pointer[Zone]
	// clusterset is the clusterset.local zone of multi-cluster services,
	// rebuilt with zone.
	clusterset atomic.Pointer[Zone]

	metrics *metrics

	ready     chan struct{} // closed by readyOnce when serving first starts
	readyOnce sync.Once

	mu   sync.Mutex // guards addr
	addr net.Addr
}

// New checks cfg, fills its defaults and returns a Server that reads the
// cluster through client.
func New(cfg Config, client kubernetes.Interface) (*Server, error) {
	if cfg.ListenAddr == "" {
		return nil, errors.New("dns: Config.ListenAddr is empty")
	}
	if _, _, err := net.SplitHostPort(cfg.ListenAddr); err != nil {
		return nil, fmt.Errorf("dns: Config.ListenAddr: %w", err)
	}
	if client == nil {
		return nil, errors.New("dns: no Kubernetes client")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if _, ok := dns.IsDomainName(cfg.ClusterDomain); !ok {
		return nil, fmt.Errorf("dns: Config.ClusterDomain %q is not a domain name", cfg.ClusterDomain)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("dns: Config.TTL %v is under a second", cfg.TTL)
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for _, u := range cfg.Upstreams {
		if err := CheckUpstream(u); err != nil {
			return nil, err
		}
	}
	ups := cfg.Upstreams
	if len(ups) == 0 {
		ups = upstreamsFrom(cfg.ResolvConf, systemdResolvConf)
	}
	cfg.Upstreams = nil
	for _, u := range ups {
		// Forwarding to ourselves would loop.
		if u = withPort(u); u != cfg.ListenAddr {
			cfg.Upstreams = append(cfg.Upstreams, u)
		}
	}
	m, err := newMetrics(cfg.Registerer, cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("dns: metrics: %w", err)
	}
	clk := clock.RealClock{}
	return &Server{
		cfg:     cfg,
		client:  client,
		fwd:     newForwarder(cfg.Upstreams, clk),
		clock:   clk,
		ttl:     uint32(cfg.TTL / time.Second),
		metrics: m,
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once the server first answers questions.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on (UDP and TCP alike), nil when it
// is not serving.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run syncs the informer caches, then serves until ctx ends. It returns once
// its listeners are closed and its goroutines have exited.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Log
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTransform(stripManagedFields))
	defer func() {
		cancel()
		factory.Shutdown() // waits for the informers' goroutines
	}()
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()

	// changed holds one pending rebuild; events arriving meanwhile fold into it.
	changed := changes.New()
	if err := changed.Watch(services.Informer(), slices.Informer()); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns: sync %v cache", typ)
		}
	}
	rebuild := func() error {
		svcs, err := services.Lister().List(everything)
		if err != nil {
			return err
		}
		eps, err := slices.Lister().List(everything)
		if err != nil {
			return err
		}
		serial := uint32(s.clock.Now().Unix())
		s.zone.Store(Build(s.cfg.ClusterDomain, s.ttl, serial, svcs, eps))
		s.clusterset.Store(BuildClusterset(s.ttl, serial, svcs))
		return nil
	}
	if err := rebuild(); err != nil {
		return err
	}

	pc, l, err := listen(s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: l, Handler: s}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	started := make(chan struct{}, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- srv.ActivateAndServe()
		}()
	}
	stopServers := func() {
		for _, srv := range []*dns.Server{udp, tcp} {
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = srv.ShutdownContext(sctx) // fails only when it never started
			scancel()
		}
		pc.Close()
		l.Close()
		wg.Wait()
		s.mu.Lock()
		s.addr = nil
		s.mu.Unlock()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-errc:
			stopServers()
			return fmt.Errorf("dns: serve: %w", err)
		}
	}
	s.mu.Lock()
	s.addr = pc.LocalAddr()
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	log.Info("serving cluster DNS", "addr", pc.LocalAddr().String(), "domain", s.cfg.ClusterDomain, "upstreams", s.cfg.Upstreams)

	for {
		select {
		case <-changed.C():
			if err := rebuild(); err != nil {
				log.Warn("rebuild DNS zone", "err", err)
			}
			continue
		case <-ctx.Done():
			stopServers()
			return nil
		case err := <-errc:
			stopServers()
			return fmt.Errorf("dns: serve: %w", err)
		}
	}
}

// stripManagedFields drops what the zone never reads, to keep the caches small.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// listen binds UDP and TCP on the same address. With port 0, the TCP port
// follows the one picked for UDP, and a few tries cover its being taken.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		bound := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		l, err := net.Listen("tcp", net.JoinHostPort(host, bound))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || attempt == 5 {
			return nil, nil, err
		}
	}
}

// ServeDNS answers one question; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	client, udp := w.RemoteAddr().(*net.UDPAddr)
	if !udp {
		tcp, _ := w.RemoteAddr().(*net.TCPAddr)
		client = (*net.UDPAddr)(tcp)
	}
	resp := s.reply(ctx, req, udp)
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Log.Debug("write DNS answer", "err", err, "client", w.RemoteAddr().String())
	}
	s.metrics.observe(req, resp, udp, client != nil && client.IP.To4() == nil, time.Since(start))
}

// serverBufSize is the EDNS0 buffer size this server advertises.
const serverBufSize = 1232

// reply builds the answer to req: from the zone, or from upstream. Over UDP
// it is truncated to what the client can take (512 bytes, or its EDNS0
// buffer size).
func (s *Server) reply(ctx context.Context, req *dns.Msg, udp bool) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	opt := req.IsEdns0()
	switch {
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		resp.Rcode = dns.RcodeBadVers
	default:
		s.resolve(ctx, req.Question[0], opt != nil && opt.Do(), req.CheckingDisabled, resp)
	}
	size := dns.MaxMsgSize
	if opt != nil {
		resp.SetEdns0(serverBufSize, opt.Do())
		if udp {
			size = int(opt.UDPSize())
		}
	} else if udp {
		size = dns.MinMsgSize
	}
	resp.Truncate(size)
	return resp
}

// resolve fills resp with the answer to q.
func (s *Server) resolve(ctx context.Context, q dns.Question, do, cd bool, resp *dns.Msg) {
	z := s.zone.Load()
	if z == nil {
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	a, ok := z.Lookup(q)
	if !ok {
		if cs := s.clusterset.Load(); cs != nil {
			a, ok = cs.Lookup(q)
		}
	}
	if ok {
		resp.Authoritative = true
		resp.Rcode, resp.Answer, resp.Ns, resp.Extra = a.Rcode, a.Answer, a.Authority, a.Extra
		s.chase(ctx, z, q, do, cd, resp)
		return
	}
	m, err := s.fwd.forward(ctx, q, do, cd)
	if err != nil {
		s.cfg.Log.Debug("forward DNS question", "name", q.Name, "type", dns.TypeToString[q.Qtype], "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	resp.Rcode, resp.Answer, resp.Ns, resp.Extra = m.Rcode, m.Answer, m.Ns, m.Extra
	resp.AuthenticatedData = m.AuthenticatedData
}

// maxChase bounds how many CNAMEs an answer follows.
const maxChase = 8

// chase follows a CNAME ending resp's answer (an ExternalName Service) to
// the asked type, in the zone or upstream, as CoreDNS does: stub resolvers
// (glibc, musl) expect the addresses in the same answer.
func (s *Server) chase(ctx context.Context, z *Zone, q dns.Question, do, cd bool, resp *dns.Msg) {
	if q.Qtype == dns.TypeCNAME || q.Qtype == dns.TypeANY {
		return
	}
	for range maxChase {
		if len(resp.Answer) == 0 {
			return
		}
		cname, ok := resp.Answer[len(resp.Answer)-1].(*dns.CNAME)
		if !ok {
			return
		}
		next := dns.Question{Name: cname.Target, Qtype: q.Qtype, Qclass: q.Qclass}
		if a, ok := z.Lookup(next); ok {
			resp.Rcode, resp.Ns, resp.Extra = a.Rcode, a.Authority, a.Extra
			resp.Answer = append(resp.Answer, a.Answer...)
			continue
		}
		m, err := s.fwd.forward(ctx, next, do, cd)
		if err != nil {
			// The CNAME alone still answers; the client may follow it.
			return
		}
		resp.Rcode, resp.Ns = m.Rcode, m.Ns
		resp.Answer = append(resp.Answer, m.Answer...)
		return
	}
}

// CheckUpstream accepts an upstream resolver given as an IP address, with or
// without a port.
func CheckUpstream(u string) error {
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		host, port = u, "53"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("dns: upstream resolver %q: the port is not a number from 1 to 65535", u)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("dns: upstream resolver %q is not an IP address or IP:port", u)
	}
	return nil
}
