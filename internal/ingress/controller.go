package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/events"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/skiffdev/skiff/internal/changes"
)

// Controller timings.
const (
	debounce     = 50 * time.Millisecond
	resync       = 30 * time.Second
	shutdownWait = 5 * time.Second
)

// Config is the ingress controller's configuration; New checks it.
type Config struct {
	// NodeName is the node this controller runs on (required).
	NodeName string
	// Client reads Ingresses, IngressClasses, Services, EndpointSlices and
	// TLS Secrets, and writes Ingress status and Events (required).
	Client kubernetes.Interface
	// HTTPAddr and HTTPSAddr are the listen addresses, e.g. ":80" and
	// ":443" (required).
	HTTPAddr, HTTPSAddr string
	// Addresses returns the node addresses published in the status of
	// served Ingresses (required when WriteStatus), and Gateways' addresses
	// without an address pool.
	Addresses func() []string
	// PublishService, when set, names the LoadBalancer Service the
	// proxies are published as (kube-system/skiff-ingress): while it has
	// ingress IPs, those are the addresses published, instead of
	// Addresses' (as ingress-nginx's --publish-service).
	PublishService types.NamespacedName
	// WriteStatus makes this controller the one that writes Ingress status
	// and emits Events; give exactly one node the job, or nodes will fight
	// over status and repeat Events.
	WriteStatus bool
	// GatewayClient, when set, serves the Gateway API too: Gateways of the
	// GatewayClasses whose controllerName is GatewayControllerName, and
	// their HTTPRoutes. Their informers start once the API server serves
	// the gateway.networking.k8s.io/v1 kinds.
	GatewayClient gateway.Interface
	// GatewayPool, when valid, gives each Gateway an address of its own
	// (clusterconfig's GatewayAddressPool); the caller makes the node
	// accept the range as local.
	GatewayPool netip.Prefix
	// ExperimentalGatewayAPI: the cluster has the Gateway API's
	// experimental-channel CRDs, and the GatewayClass claims the features
	// they carry (HTTPRoute retry).
	ExperimentalGatewayAPI bool
	// AccessLog logs one line per request.
	AccessLog bool
	// Registerer receives the metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Controller serves the Ingresses of class "skiff" on this node.
type Controller struct {
	cfg   Config
	proxy *Proxy

	mu        sync.Mutex // guards the listen addresses
	httpAddr  net.Addr
	httpsAddr net.Addr
	ports     map[int]net.Addr // every served port's listen address
}

// New checks cfg and returns a Controller; nothing runs before Run.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("ingress: Config.NodeName is empty")
	case cfg.Client == nil:
		return nil, errors.New("ingress: Config.Client is nil")
	case cfg.HTTPAddr == "":
		return nil, errors.New("ingress: Config.HTTPAddr is empty")
	case cfg.HTTPSAddr == "":
		return nil, errors.New("ingress: Config.HTTPSAddr is empty")
	case cfg.WriteStatus && cfg.Addresses == nil:
		return nil, errors.New("ingress: Config.Addresses is nil while WriteStatus is set")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	httpsPort := 0
	if _, port, err := net.SplitHostPort(cfg.HTTPSAddr); err != nil {
		return nil, fmt.Errorf("ingress: Config.HTTPSAddr: %w", err)
	} else if n, err := net.LookupPort("tcp", port); err == nil {
		httpsPort = n
	}
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("ingress: Config.HTTPAddr: %w", err)
	}
	p, err := NewProxy(ProxyConfig{
		HTTPSPort:  httpsPort,
		Registerer: cfg.Registerer,
		AccessLog:  cfg.AccessLog,
		Log:        cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	return &Controller{cfg: cfg, proxy: p}, nil
}

// Addrs returns the HTTP and HTTPS listen addresses while Run serves, nil
// otherwise.
func (c *Controller) Addrs() (httpAddr, httpsAddr net.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.httpAddr, c.httpsAddr
}

// Run syncs the informer caches, then serves HTTP and HTTPS until ctx ends.
// It returns after the servers have shut down (a 5 s grace for requests in
// flight) and every goroutine it started has exited.
func (c *Controller) Run(ctx context.Context) error {
	log := c.cfg.Log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factory := informers.NewSharedInformerFactoryWithOptions(c.cfg.Client, 0,
		informers.WithTransform(stripManagedFields))
	secretFactory := informers.NewSharedInformerFactoryWithOptions(c.cfg.Client, 0,
		informers.WithTransform(stripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
		}))
	defer func() {
		cancel()
		factory.Shutdown()
		secretFactory.Shutdown()
	}()
	ings := factory.Networking().V1().Ingresses()
	classes := factory.Networking().V1().IngressClasses()
	services := factory.Core().V1().Services()
	slicesInf := factory.Discovery().V1().EndpointSlices()
	secrets := secretFactory.Core().V1().Secrets()

	// changed holds one pending rebuild; events arriving meanwhile fold in.
	changed := changes.New()
	if err := changed.Watch(ings.Informer(), classes.Informer(), services.Informer(), slicesInf.Informer(), secrets.Informer()); err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	factory.Start(ctx.Done())
	secretFactory.Start(ctx.Done())
	for _, f := range []informers.SharedInformerFactory{factory, secretFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("ingress: sync %v cache", typ)
			}
		}
	}

	var rec *reporter
	if c.cfg.WriteStatus {
		b := events.NewBroadcaster(&events.EventSinkImpl{Interface: c.cfg.Client.EventsV1()})
		if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
			return fmt.Errorf("ingress: start events: %w", err)
		}
		defer b.Shutdown()
		rec = &reporter{recorder: b.NewRecorder(scheme.Scheme, "skiff-ingress"), seen: map[string]bool{}}
	}

	gw := c.gatewayInformers(ctx, factory, changed)
	defer gw.shutdown()

	var checks sync.WaitGroup
	checks.Go(func() { c.proxy.RunHealthChecks(ctx) })
	defer func() {
		cancel()
		checks.Wait()
	}()

	ls := &listeners{c: c, open: map[int]*served{}, errc: make(chan error, 2)}
	rebuild := func() error {
		in := State{Class: ClassName, Now: time.Now(), GatewayPool: c.cfg.GatewayPool}
		var errs [5]error
		all := labels.Everything()
		in.Ingresses, errs[0] = ings.Lister().List(all)
		in.IngressClasses, errs[1] = classes.Lister().List(all)
		in.Services, errs[2] = services.Lister().List(all)
		in.EndpointSlices, errs[3] = slicesInf.Lister().List(all)
		in.Secrets, errs[4] = secrets.Lister().List(all)
		if err := errors.Join(errs[:]...); err != nil {
			return err
		}
		gwSynced, err := gw.fill(&in)
		if err != nil {
			return err
		}
		addrs := c.addresses(services.Lister())
		in.GatewayAddresses = addrs
		t := Build(in)
		c.proxy.SetTable(t)
		ls.reconcile(ctx, t)
		if c.cfg.WriteStatus {
			rec.report(t, in.Ingresses)
			c.writeStatus(ctx, t, in.Ingresses, addrs)
			if gwSynced {
				c.writeGatewayStatus(ctx, t, in)
			}
		}
		return nil
	}
	if err := rebuild(); err != nil {
		ls.shutdown(ctx)
		return fmt.Errorf("ingress: %w", err)
	}
	if err := ls.err(); err != nil {
		ls.shutdown(ctx)
		return fmt.Errorf("ingress: %w", err)
	}
	httpAddr, httpsAddr := c.Addrs()
	log.Info("serving ingress", "http", httpAddr.String(), "https", httpsAddr.String(), "node", c.cfg.NodeName)

	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		select {
		case <-changed.C():
			// Let a burst of changes settle into one rebuild.
			select {
			case <-time.After(debounce):
			case <-ctx.Done():
				ls.shutdown(ctx)
				return nil
			}
		case <-tick.C:
		case <-ctx.Done():
			ls.shutdown(ctx)
			return nil
		case err := <-ls.errc:
			ls.shutdown(ctx)
			return fmt.Errorf("ingress: serve: %w", err)
		}
		select {
		case <-changed.C():
		default:
		}
		if err := rebuild(); err != nil {
			log.Warn("rebuild ingress table", "err", err)
		}
	}
}

// addresses are the addresses to publish: the PublishService's ingress IPs
// while it has some, else Addresses'.
func (c *Controller) addresses(services corelisters.ServiceLister) []string {
	if k := c.cfg.PublishService; k.Name != "" {
		if svc, err := services.Services(k.Namespace).Get(k.Name); err == nil {
			var ips []string
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if in.IP != "" {
					ips = append(ips, in.IP)
				}
			}
			if len(ips) > 0 {
				return ips
			}
		}
	}
	if c.cfg.Addresses == nil {
		return nil
	}
	return c.cfg.Addresses()
}

// writeStatus publishes addrs in the status of every served Ingress whose
// status differs.
func (c *Controller) writeStatus(ctx context.Context, t *Table, all []*networkingv1.Ingress, addrs []string) {
	want := statusFor(addrs)
	for _, ing := range all {
		if !t.Serves(key(ing)) || equality.Semantic.DeepEqual(ing.Status.LoadBalancer.Ingress, want) {
			continue
		}
		up := ing.DeepCopy()
		up.Status.LoadBalancer.Ingress = want
		_, err := c.cfg.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		switch {
		case apierrors.IsConflict(err):
			// A newer version is on its way to the cache; the rebuild it
			// triggers compares again.
		case err != nil:
			c.cfg.Log.Warn("update ingress status", "ingress", key(ing).String(), "err", err)
		}
	}
}

// statusFor turns node addresses into status entries: IPs only, sorted.
func statusFor(addrs []string) []networkingv1.IngressLoadBalancerIngress {
	var ips []netip.Addr
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	var out []networkingv1.IngressLoadBalancerIngress
	for _, ip := range ips {
		out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip.String()})
	}
	return out
}

// reporter turns a table's problems and conflicts into Events, once per
// distinct message.
type reporter struct {
	recorder events.EventRecorder
	seen     map[string]bool // by ingress, reason and message
}

func (r *reporter) report(t *Table, all []*networkingv1.Ingress) {
	byKey := make(map[types.NamespacedName]*networkingv1.Ingress, len(all))
	for _, ing := range all {
		byKey[key(ing)] = ing
	}
	for _, p := range slices.Concat(t.Problems, t.Conflicts) {
		id := p.String()
		ing := byKey[p.Ingress]
		if r.seen[id] || ing == nil {
			continue
		}
		r.seen[id] = true
		r.recorder.Eventf(ing, nil, corev1.EventTypeWarning, p.Reason, "Sync", "%s", p.Message)
	}
}

// stripManagedFields drops what Build never reads, to keep the caches small.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
