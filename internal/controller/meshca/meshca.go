package meshca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/pki"
)

// The protocol between the node proxies and the signer.
const (
	// SignerName is the spec.signerName of the mesh's requests.
	SignerName = "mesh.skiff.dev/workload"
	// TokenAnnotation holds the service-account token (audience Audience,
	// bound to the pod) that proves the request is for a pod's identity.
	TokenAnnotation = "mesh.skiff.dev/token"
	// Audience is the audience of that token.
	Audience = "mesh.skiff.dev"
	// NodeLabel, NamespaceLabel and ServiceAccountLabel say whose request
	// it is, for people and label selectors: the signer trusts none of them.
	NodeLabel           = "mesh.skiff.dev/node"
	NamespaceLabel      = "mesh.skiff.dev/namespace"
	ServiceAccountLabel = "mesh.skiff.dev/service-account"
	// DefaultTrustDomain is the trust domain of a cluster whose domain is
	// the default one.
	DefaultTrustDomain = "cluster.local"
)

// The conditions and the Event the signer writes.
const (
	// ReasonVerified is the reason of the Approved condition.
	ReasonVerified = "MeshIdentityVerified"
	// ReasonRefused is the reason of the Denied (or Failed) condition.
	ReasonRefused = "MeshIdentityRefused"
	// EventRefused is the reason of the Warning Event on the pod of a
	// refused request.
	EventRefused = "MeshCertificateRefused"
)

// SPIFFEID is the SPIFFE ID of the service account ns/sa in trustDomain:
// spiffe://TRUSTDOMAIN/ns/NS/sa/SA.
func SPIFFEID(trustDomain, ns, sa string) string {
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ParseSPIFFEID reads a service account's SPIFFE ID, strictly: the scheme
// spiffe, a trust domain of lowercase letters, digits, dots, dashes and
// underscores (no user, no port), the path exactly /ns/NS/sa/SA with a
// valid namespace and service-account name, unescaped, and no query or
// fragment.
func ParseSPIFFEID(u *url.URL) (trustDomain, ns, sa string, err error) {
	if u == nil {
		return "", "", "", errors.New("no SPIFFE ID")
	}
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%q is not a service account's SPIFFE ID: %s", u.String(), why)
	}
	switch {
	case u.Scheme != "spiffe":
		return bad("its scheme is not spiffe")
	case u.Opaque != "":
		return bad("it has no trust domain")
	case u.User != nil:
		return bad("it has user info")
	case strings.Contains(u.Host, ":"):
		return bad("it has a port")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("it has a query")
	case u.Fragment != "" || u.RawFragment != "":
		return bad("it has a fragment")
	case u.RawPath != "" || strings.Contains(u.Path, "%"):
		return bad("its path is escaped")
	}
	if err := checkTrustDomain(u.Host); err != nil {
		return bad(err.Error())
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" {
		return bad("its path is not /ns/NAMESPACE/sa/SERVICEACCOUNT")
	}
	ns, sa = parts[2], parts[4]
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return bad(fmt.Sprintf("namespace %q: %s", ns, errs[0]))
	}
	if errs := validation.IsDNS1123Subdomain(sa); len(errs) > 0 {
		return bad(fmt.Sprintf("service account %q: %s", sa, errs[0]))
	}
	return u.Host, ns, sa, nil
}

// checkTrustDomain applies the SPIFFE rules for a trust domain name.
func checkTrustDomain(td string) error {
	if td == "" {
		return errors.New("the trust domain is empty")
	}
	if len(td) > 255 {
		return errors.New("the trust domain is longer than 255 characters")
	}
	for _, r := range td {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("the trust domain %q holds %q: only lowercase letters, digits, '.', '-' and '_' are allowed", td, r)
		}
	}
	return nil
}

// Config is what a Controller needs; Client and CA are required.
type Config struct {
	// Client approves, denies and signs the requests, reviews tokens,
	// reads pods and writes Events.
	Client kubernetes.Interface
	// CA signs the certificates: the mesh CA, a root of its own.
	CA *pki.CA
	// TrustDomain is the SPIFFE IDs' trust domain, the cluster domain
	// (default DefaultTrustDomain).
	TrustDomain string
	// Registerer receives the metrics (nil: counted nowhere).
	Registerer prometheus.Registerer
	// Recorder receives the Events on the pods of refused requests
	// (default: a recorder that writes them to the API server, started by
	// Run).
	Recorder record.EventRecorder
	// Log is the controller's logger (default slog.Default()).
	Log *slog.Logger
	// Clock dates the certificates (default the real clock).
	Clock clock.PassiveClock
}

// Tuning of the controller.
const (
	workers = 2
	resync  = 10 * time.Minute
	// component is the Events' source.
	component = "skiff-mesh-ca"
)

// Controller is the mesh CA's signer.
type Controller struct {
	cfg     Config
	metrics *metrics
}

// New applies cfg's defaults and checks it; Run starts the controller.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("meshca: Config.Client is nil")
	case cfg.CA == nil || cfg.CA.Cert == nil || cfg.CA.Key == nil:
		return nil, errors.New("meshca: Config.CA is nil or has no certificate and key")
	case !cfg.CA.Cert.IsCA:
		return nil, fmt.Errorf("meshca: Config.CA: %q is not a CA certificate", cfg.CA.Cert.Subject.CommonName)
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	if err := checkTrustDomain(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("meshca: Config.TrustDomain: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("meshca: metrics: %w", err)
	}
	return &Controller{cfg: cfg, metrics: m}, nil
}

// Run signs until ctx ends, then returns after its goroutines have exited.
func (c *Controller) Run(ctx context.Context) error {
	recorder := c.cfg.Recorder
	if recorder == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		defer b.Shutdown()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.cfg.Client.CoreV1().Events("")})
		recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}
	ctx, cancel := context.WithCancel(ctx)
	r, stop, err := c.start(ctx, recorder)
	defer func() { cancel(); stop() }() // the informer stops with ctx
	if err != nil {
		return err
	}
	var running sync.WaitGroup
	for range workers {
		running.Go(func() {
			for r.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	r.queue.ShutDown()
	running.Wait()
	return nil
}

// start builds a reconciler over a started informer of the signer's
// requests and waits for its cache. stop shuts the queue and the informer
// down and waits for the informer's goroutines; call it after ctx ended.
func (c *Controller) start(ctx context.Context, recorder record.EventRecorder) (r *reconciler, stop func(), err error) {
	factory := informers.NewSharedInformerFactoryWithOptions(c.cfg.Client, resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.signerName=" + SignerName
		}))
	csrs := factory.Certificates().V1().CertificateSigningRequests()
	r = &reconciler{
		client:   c.cfg.Client,
		ca:       c.cfg.CA,
		domain:   c.cfg.TrustDomain,
		clock:    c.cfg.Clock,
		recorder: recorder,
		log:      c.cfg.Log,
		metrics:  c.metrics,
		csrs:     csrs.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "mesh-ca"}),
	}
	queue := r.queue
	stop = func() {
		queue.ShutDown()
		factory.Shutdown()
	}
	enqueue := func(obj any) {
		if name, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(name)
		}
	}
	if _, err := csrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return nil, stop, fmt.Errorf("watch CertificateSigningRequests: %w", err)
	}
	factory.Start(ctx.Done())
	for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, stop, fmt.Errorf("cache of %v did not sync", t)
		}
	}
	return r, stop, nil
}
