package localpath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffdev/skiff/internal/controller/leader"
)

// Config tunes a Controller; the zero value is usable.
type Config struct {
	// Workers is how many keys are reconciled at once (default 2).
	Workers int
	// Resync is how often every claim and volume is reconciled again
	// although nothing changed (default 10 minutes).
	Resync time.Duration
	// Namespace is where cleanup pods run (default kube-system).
	Namespace string
	// CleanupImage is the image of the cleanup pods; it must have rm
	// (default localhost/skiff/busybox:latest, which skiff's agent imports).
	CleanupImage string
	// LeaseName, if set, is a Lease in kube-system that guards the
	// controller: it reconciles only while it holds the Lease, so several
	// servers may run it. Empty runs it unguarded.
	LeaseName string
	// Identity is this process's holder identity in the Lease (default the
	// host name and a random suffix).
	Identity string
	// Recorder receives the Events (default: a recorder that writes them to
	// the API server, started by Run).
	Recorder record.EventRecorder
	// Log is the controller's logger (default slog.Default()).
	Log *slog.Logger
}

// Defaults of Config.
const (
	DefaultCleanupImage = "localhost/skiff/busybox:latest"
	defaultWorkers      = 2
	defaultResync       = 10 * time.Minute
)

// Controller is the local-path provisioner.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
}

// New applies cfg's defaults; Run starts the controller.
func New(cfg Config, client kubernetes.Interface) (*Controller, error) {
	if client == nil {
		return nil, errors.New("localpath: client is nil")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("localpath: Config.Workers is %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.Resync == 0 {
		cfg.Resync = defaultResync
	}
	if cfg.Namespace == "" {
		cfg.Namespace = metav1.NamespaceSystem
	}
	if cfg.CleanupImage == "" {
		cfg.CleanupImage = DefaultCleanupImage
	}
	if cfg.Identity == "" {
		cfg.Identity = leader.Identity()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Controller{cfg: cfg, client: client}, nil
}

// Run reconciles until ctx ends (or, with a LeaseName, until the Lease is
// lost: then it returns an error, and its caller may run it again). It
// returns after its goroutines have exited.
func (c *Controller) Run(ctx context.Context) error {
	recorder := c.cfg.Recorder
	if recorder == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		defer b.Shutdown()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
		recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ProvisionerName + "_" + c.cfg.Identity})
	}
	if c.cfg.LeaseName == "" {
		return c.run(ctx, recorder)
	}
	return c.runElected(ctx, recorder)
}

// runElected runs the controller while it holds the Lease. An overlap with
// the next holder is harmless, since every write is to an object with a
// name derived from the claim or volume.
func (c *Controller) runElected(ctx context.Context, recorder record.EventRecorder) error {
	return leader.Run(ctx, c.client, c.cfg.LeaseName, c.cfg.Identity, c.cfg.Log, func(ctx context.Context) error {
		return c.run(ctx, recorder)
	})
}

// run starts the informers and the workers and waits for ctx to end.
func (c *Controller) run(ctx context.Context, recorder record.EventRecorder) error {
	ctx, cancel := context.WithCancel(ctx)
	r, stop, err := c.start(ctx, recorder)
	if err != nil {
		cancel()
		stop()
		return err
	}
	var workers sync.WaitGroup
	for range c.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for r.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	r.queue.ShutDown()
	workers.Wait()
	cancel()
	stop()
	return nil
}

// start builds a reconciler over freshly started informers and waits for
// their caches. stop ends the informers (after ctx has ended) and waits for
// their goroutines.
func (c *Controller) start(ctx context.Context, recorder record.EventRecorder) (r *reconciler, stop func(), err error) {
	factory := informers.NewSharedInformerFactory(c.client, c.cfg.Resync)
	podFactory := informers.NewSharedInformerFactoryWithOptions(c.client, c.cfg.Resync,
		informers.WithNamespace(c.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = labelCleanup }))
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	nodes := factory.Core().V1().Nodes()
	classes := factory.Storage().V1().StorageClasses()
	pods := podFactory.Core().V1().Pods()
	r = &reconciler{
		client:   c.client,
		recorder: recorder,
		log:      c.cfg.Log,
		cfg:      c.cfg,
		claims:   claims.Lister(),
		volumes:  volumes.Lister(),
		nodes:    nodes.Lister(),
		classes:  classes.Lister(),
		pods:     pods.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[key](),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "local-path"}),
	}
	queue := r.queue // r is nil when start fails
	stop = func() {
		queue.ShutDown()
		factory.Shutdown()
		podFactory.Shutdown()
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		key      func(obj any) (key, bool)
	}{
		{claims.Informer(), claimKeyOf},
		{volumes.Informer(), volumeKeyOf},
		{pods.Informer(), cleanupPodKeyOf},
	}
	for _, h := range handlers {
		keyOf := h.key
		enqueue := func(obj any) {
			if k, ok := keyOf(obj); ok {
				r.queue.Add(k)
			}
		}
		if _, err := h.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, obj any) { enqueue(obj) },
			DeleteFunc: enqueue,
		}); err != nil {
			return nil, stop, err
		}
	}
	_ = nodes.Informer()
	_ = classes.Informer()
	factory.Start(ctx.Done())
	podFactory.Start(ctx.Done())
	for _, synced := range []map[reflect.Type]bool{factory.WaitForCacheSync(ctx.Done()), podFactory.WaitForCacheSync(ctx.Done())} {
		for t, ok := range synced {
			if !ok {
				return nil, stop, fmt.Errorf("cache of %v did not sync", t)
			}
		}
	}
	return r, stop, nil
}

// The keys of the queue: a claim ("namespace/name") or a volume ("name").
type kind int

const (
	claimKind kind = iota
	volumeKind
)

type key struct {
	kind kind
	name string
}

func (k key) String() string {
	if k.kind == claimKind {
		return "PersistentVolumeClaim " + k.name
	}
	return "PersistentVolume " + k.name
}

func claimKeyOf(obj any) (key, bool) {
	name, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return key{claimKind, name}, err == nil
}

func volumeKeyOf(obj any) (key, bool) {
	name, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return key{volumeKind, name}, err == nil
}

// cleanupPodKeyOf maps a cleanup pod to the volume it cleans.
func cleanupPodKeyOf(obj any) (key, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Annotations[annCleanupVolume] == "" {
		return key{}, false
	}
	return key{volumeKind, pod.Annotations[annCleanupVolume]}, true
}
