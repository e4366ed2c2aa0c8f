package mesh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/skiffdev/skiff/internal/changes"
	"github.com/skiffdev/skiff/internal/crds"
	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// Config is what a node proxy needs.
type Config struct {
	// NodeName is the node whose enrolled pods the proxy serves.
	NodeName string
	// Client reads pods, namespaces, Services and EndpointSlices
	// cluster-wide and asks the mesh CA for certificates, with the node's
	// credentials (the skiff:mesh ClusterRole and the Node authorizer).
	Client kubernetes.Interface
	// Dynamic reads AuthorizationPolicies and PeerAuthentications
	// (mesh.skiff.dev), with the same credentials.
	Dynamic dynamic.Interface
	// TrustDomain is the SPIFFE trust domain: the cluster domain.
	TrustDomain string
	// NFT is the capture table; nil means the real nft, table ip
	// skiff-mesh.
	NFT knftables.Interface
	// Routes, when set, applies HTTPRoutes attached to Services (GAMMA)
	// to enrolled pods' requests; nil leaves requests as they are.
	Routes Routes
	// ListenHost is the address the proxy's ports listen on (default all
	// of the node's).
	ListenHost string
	// Ports are the proxy's ports; nil means Istio's (OutboundPort,
	// InboundPlaintextPort, TunnelPort, MetricsPort). A zero port is
	// chosen by the kernel (tests).
	Ports *Ports
	// Resync re-applies the capture rules this often without changes
	// (default 30 s).
	Resync time.Duration
	Clock  clock.Clock
	Log    *slog.Logger
}

// Ports are a proxy's listening ports.
type Ports struct {
	Outbound, InboundPlaintext, Tunnel, Metrics int
}

// Proxy is a node's mesh proxy. Make it once per process with New and Run
// it again after a failure: its metrics count on.
type Proxy struct {
	cfg     Config
	metrics *metrics
	ids     *identities
	tunnels *tunnels

	// world is the current run's view of the cluster (nil between runs).
	world World
	// policies is the latest snapshot of the mesh's security policies.
	policies atomic.Pointer[policies]
	denials  denials

	transportsMu sync.Mutex // guards transports
	// transports send routed requests, one pair per client pod.
	transports map[transportKey]*clientTransports
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Proxy, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("mesh: Config.NodeName is empty")
	}
	if cfg.Client == nil || cfg.Dynamic == nil {
		return nil, errors.New("mesh: Config.Client or Config.Dynamic is nil")
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "cluster.local"
	}
	if cfg.NFT == nil {
		nft, err := knftables.New(knftables.IPv4Family, Table)
		if err != nil {
			return nil, fmt.Errorf("mesh: nftables: %w", err)
		}
		cfg.NFT = nft
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Ports == nil {
		cfg.Ports = &Ports{Outbound: OutboundPort, InboundPlaintext: InboundPlaintextPort, Tunnel: TunnelPort, Metrics: MetricsPort}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m := newMetrics()
	p := &Proxy{
		cfg:     cfg,
		metrics: m,
		ids:     newIdentities(cfg.Client, cfg.NodeName, cfg.TrustDomain, cfg.Clock, m, cfg.Log),
		tunnels: newTunnels(),
	}
	p.denials.p = p
	return p, nil
}

// waitServed waits until the API server serves the mesh's policy kinds,
// and reports false if ctx ends first. The server installs their CRDs
// once it is ready, and its own node's agent can get here before that;
// informers started earlier would log a failed list every second or so
// until the kinds appear.
func (p *Proxy) waitServed(ctx context.Context) bool {
	gv, disc := v1alpha1.GroupVersion.String(), p.cfg.Client.Discovery()
	logged := false
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(context.Context) (bool, error) {
		if crds.Served(disc, gv, v1alpha1.AuthorizationPolicies.Resource, v1alpha1.PeerAuthentications.Resource) {
			return true, nil
		}
		if !logged {
			p.cfg.Log.Info("waiting for the API server to serve the mesh API", "groupVersion", gv)
			logged = true
		}
		return false, nil
	})
	return err == nil
}

// Run serves until ctx ends, and returns after every goroutine it started
// has stopped. Connections in flight end with it.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !p.waitServed(ctx) {
		return nil
	}
	factory := informers.NewSharedInformerFactory(p.cfg.Client, 10*time.Minute)
	world, infs, err := newInformerWorld(factory)
	if err != nil {
		return err
	}
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(p.cfg.Dynamic, 10*time.Minute)
	authzInf := dyn.ForResource(v1alpha1.AuthorizationPolicies).Informer()
	peerInf := dyn.ForResource(v1alpha1.PeerAuthentications).Informer()
	infs = append(infs, authzInf, peerInf)
	changed := changes.New()
	if err := changed.Watch(infs...); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	dyn.Start(ctx.Done())
	defer dyn.Shutdown()
	synced := make([]cache.InformerSynced, len(infs))
	for i, inf := range infs {
		synced[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	p.world = world
	defer p.closeTransports()

	listen := func(port int) (net.Listener, error) {
		return net.Listen("tcp4", net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(port)))
	}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := p.cfg.Ports
	for _, port := range []int{ports.Outbound, ports.InboundPlaintext, ports.Tunnel, ports.Metrics} {
		l, err := listen(port)
		if err != nil {
			return fmt.Errorf("mesh proxy: %w", err)
		}
		lns = append(lns, l)
	}
	// Stopping: cancel, which closes the listeners (their accept loops
	// end) and every connection's sockets, then wait for the goroutines.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	context.AfterFunc(ctx, func() {
		for _, l := range lns {
			l.Close()
		}
	})
	serve := func(l net.Listener, handle func(context.Context, net.Conn)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					stop := context.AfterFunc(ctx, func() { c.Close() })
					defer stop()
					handle(ctx, c)
				}()
			}
		}()
	}
	serve(lns[0], p.outbound)
	serve(lns[1], p.inboundPlaintext)
	tunnelTLS := serverTLS(func(id Identity) (*tls.Certificate, error) {
		cert, _, err := p.ids.Get(ctx, id, 0)
		return cert, err
	}, p.ids.Roots, p.cfg.TrustDomain)
	serve(lns[2], func(ctx context.Context, c net.Conn) { p.serveTunnel(ctx, tls.Server(c, tunnelTLS)) })
	metricsServer := &http.Server{Handler: metricsMux(p.metrics), ReadHeaderTimeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = metricsServer.Serve(lns[3])
	}()
	defer metricsServer.Close()

	// Certificates are issued by their own loop: one may wait for the CA
	// while capture rules follow every change.
	wantIDs := make(chan []*corev1.Pod, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.issueLoop(ctx, wantIDs)
	}()

	p.cfg.Log.Info("mesh proxy serving", "node", p.cfg.NodeName, "table", "ip "+Table,
		"outbound", portOf(lns[0]), "inbound", portOf(lns[1]), "tunnel", portOf(lns[2]), "metrics", portOf(lns[3]))
	last := ""
	for {
		p.policies.Store(loadPolicies(authzInf.GetStore(), peerInf.GetStore()))
		local := p.localEnrolled(world)
		addrs := make([]netip.Addr, 0, len(local))
		for _, pod := range local {
			addrs = append(addrs, podAddr(pod))
		}
		p.metrics.enrolled.Set(float64(len(local)))
		p.pruneTransports(local)
		select {
		case <-wantIDs:
		default:
		}
		wantIDs <- local
		retry := false
		objs := RenderCapture(addrs, portOf(lns[0]), portOf(lns[1]))
		if text := fmt.Sprint(addrs); text != last {
			if err := applyCapture(ctx, p.cfg.NFT, objs); err != nil {
				p.cfg.Log.Warn("mesh capture rules", "err", err)
				retry = true
				last = ""
			} else {
				last = text
			}
		}
		wait := p.cfg.Resync
		if retry {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed.C():
		case <-p.cfg.Clock.After(wait):
			last = "" // repair a table someone else changed
		}
	}
}

// portOf is l's port.
func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// closeTransports drops the routed requests' connections (the end of a
// run).
func (p *Proxy) closeTransports() {
	p.transportsMu.Lock()
	defer p.transportsMu.Unlock()
	for k, t := range p.transports {
		t.closeIdle()
		delete(p.transports, k)
	}
	p.tunnels.closeAll()
}

// issueLoop keeps the certificates of the identities of this node's
// enrolled pods issued and renewed, and each pod's identity condition
// current.
func (p *Proxy) issueLoop(ctx context.Context, local <-chan []*corev1.Pod) {
	var pods []*corev1.Pod
	for {
		want := map[Identity]*corev1.Pod{}
		for _, pod := range pods {
			id := IdentityOf(pod)
			if old := want[id]; old == nil || pod.CreationTimestamp.Before(&old.CreationTimestamp) {
				want[id] = pod
			}
		}
		p.ids.Sync(ctx, want)
		for _, pod := range pods {
			p.setIdentityCondition(ctx, pod)
		}
		select {
		case <-ctx.Done():
			return
		case pods = <-local:
		case <-p.cfg.Clock.After(5 * time.Second):
		}
	}
}

// localEnrolled lists this node's enrolled pods.
func (p *Proxy) localEnrolled(w *informerWorld) []*corev1.Pod {
	var out []*corev1.Pod
	for _, pod := range w.allPods() {
		if pod.Spec.NodeName == p.cfg.NodeName && podAddr(pod).IsValid() && Enrolled(pod, w.Namespace(pod.Namespace)) {
			out = append(out, pod)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return podAddr(a).Compare(podAddr(b)) })
	return out
}

// localEnrolledPod is the enrolled pod of this node with address a.
func (p *Proxy) localEnrolledPod(a netip.Addr) *corev1.Pod {
	pod := p.world.PodByIP(a)
	if pod == nil || pod.Spec.NodeName != p.cfg.NodeName || !Enrolled(pod, p.world.Namespace(pod.Namespace)) {
		return nil
	}
	return pod
}

func metricsMux(m *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// pick chooses one of n endpoints at random.
func pick(n int) int { return rand.IntN(n) }

// spiffe is id's SPIFFE ID, as Istio's metrics write principals.
func (p *Proxy) spiffe(id Identity) string {
	return "spiffe://" + id.Principal(p.cfg.TrustDomain)
}

// peerOf is the verified identity of a tunnel's client.
func (p *Proxy) peerOf(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, errors.New("not a TLS connection")
	}
	return peerIdentity(cs.PeerCertificates, p.ids.Roots(), x509.ExtKeyUsageClientAuth, p.cfg.TrustDomain)
}
