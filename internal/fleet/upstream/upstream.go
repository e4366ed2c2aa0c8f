// Package upstream is the fleet's control loop on the upstream cluster: it
// watches the (Cluster)PropagationPolicies and the resources they select,
// places each resource on clusters (internal/fleet/placement), records the
// result in a (Cluster)ResourceBinding, renders one Work per chosen cluster
// into that cluster's execution namespace (overridden per cluster by
// internal/fleet/override), and folds the state the clusters' agents report
// on their Works back into the binding and the resource's own status
// (internal/fleet/aggregate). A second loop watches the clusters'
// heartbeats and taints the clusters that stop sending them, which moves
// their share of replicas elsewhere once a policy's toleration runs out.
//
// It is level-based: everything is recomputed from the informers' state for
// one resource at a time, so a restart or a missed event loses nothing.
package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/fleet/override"
)

// statusCoalesce is how long reports from the clusters' agents are
// gathered before the aggregated status is written.
const statusCoalesce = 100 * time.Millisecond

// Config configures the controller.
type Config struct {
	Dynamic   dynamic.Interface
	Kube      kubernetes.Interface
	Discovery discovery.DiscoveryInterface
	Log       *slog.Logger
	// MonitorGracePeriod is how long a cluster may go without a heartbeat
	// before it is marked not Ready (default 40 s, as the node lifecycle
	// controller's --node-monitor-grace-period).
	MonitorGracePeriod time.Duration
	// DefaultNotReadyToleration is how long a policy without a toleration
	// keeps replicas on a cluster that is not Ready (default 300 s).
	DefaultNotReadyToleration time.Duration
	// Workers is the number of resources reconciled at once (default 4).
	Workers int
}

// key names one propagated resource.
type key struct {
	GVR       schema.GroupVersionResource
	Kind      string
	Namespace string
	Name      string
}

func (k key) String() string {
	return fmt.Sprintf("%s/%s %s/%s", k.GVR.GroupResource(), k.Kind, k.Namespace, k.Name)
}

// Controller is the upstream's fleet controller.
type Controller struct {
	cfg      Config
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	fleetInf dynamicinformer.DynamicSharedInformerFactory
	tmplInf  dynamicinformer.DynamicSharedInformerFactory
	queue    workqueue.TypedRateLimitingInterface[key]
	recorder record.EventRecorder

	mu           sync.Mutex
	templates    map[schema.GroupVersionResource]templateInformer // guarded by mu
	depsWatched  bool                                             // guarded by mu
	depInformers []cache.SharedIndexInformer                      // guarded by mu
	ctx          context.Context
	// exports are the EndpointSlices the agents publish for their
	// clusters' ServiceExports (set before the workers start).
	exports cache.SharedIndexInformer
}

type templateInformer struct {
	kind     string
	informer cache.SharedIndexInformer
}

// New returns a controller; Run runs it.
func New(cfg Config) *Controller {
	if cfg.MonitorGracePeriod == 0 {
		cfg.MonitorGracePeriod = 40 * time.Second
	}
	if cfg.DefaultNotReadyToleration == 0 {
		cfg.DefaultNotReadyToleration = 300 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	return &Controller{
		cfg:       cfg,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cfg.Discovery)),
		fleetInf:  dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, 0),
		tmplInf:   dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, 0),
		queue:     workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[key](), workqueue.TypedRateLimitingQueueConfig[key]{Name: "fleet"}),
		templates: map[schema.GroupVersionResource]templateInformer{},
	}
}

func (c *Controller) store(gvr schema.GroupVersionResource) cache.Store {
	return c.fleetInf.ForResource(gvr).Informer().GetStore()
}

// Run runs the controller until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.cfg.Kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "skiff-fleet"})
	c.ctx = ctx

	all := func() { c.enqueueAllBound(); c.enqueueAllSelected() }
	handler := func(f func(obj any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    f,
			UpdateFunc: func(_, obj any) { f(obj) },
			DeleteFunc: func(obj any) {
				obj = fleet.Unwrap(obj)
				f(obj)
			},
		}
	}
	for _, gvr := range []schema.GroupVersionResource{v1alpha1.PropagationPolicies, v1alpha1.ClusterPropagationPolicies} {
		if _, err := c.fleetInf.ForResource(gvr).Informer().AddEventHandler(handler(func(obj any) {
			c.watchSelected(obj)
			all()
		})); err != nil {
			return err
		}
	}
	for _, gvr := range []schema.GroupVersionResource{v1alpha1.OverridePolicies, v1alpha1.ClusterOverridePolicies} {
		if _, err := c.fleetInf.ForResource(gvr).Informer().AddEventHandler(handler(func(any) { c.enqueueAllBound() })); err != nil {
			return err
		}
	}
	if _, err := c.fleetInf.ForResource(v1alpha1.Clusters).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAllBound(); c.enqueueAllSelected(); c.enqueueAllExports() },
		UpdateFunc: func(old, obj any) {
			if clusterChanged(old.(*unstructured.Unstructured), obj.(*unstructured.Unstructured)) {
				c.enqueueAllBound()
				c.enqueueAllSelected()
				c.enqueueAllExports()
			}
		},
		DeleteFunc: func(any) { c.enqueueAllBound(); c.enqueueAllExports() },
	}); err != nil {
		return err
	}
	for _, gvr := range []schema.GroupVersionResource{v1alpha1.ResourceBindings, v1alpha1.ClusterResourceBindings} {
		enqueue := func(obj any) {
			if k, ok := c.bindingKey(obj.(*unstructured.Unstructured)); ok {
				c.queue.Add(k)
			}
		}
		h := handler(enqueue)
		// Our own status writes need no second look.
		// Its status changes (ours, mostly) bring it back only after the
		// reports are gathered: a status decided from a cache older than
		// our last write is then written again.
		h.UpdateFunc = func(old, obj any) {
			o, n := old.(*unstructured.Unstructured), obj.(*unstructured.Unstructured)
			if o.GetGeneration() != n.GetGeneration() || n.GetDeletionTimestamp() != nil {
				enqueue(obj)
			} else if k, ok := c.bindingKey(n); ok {
				c.queue.AddAfter(k, statusCoalesce)
			}
		}
		if _, err := c.fleetInf.ForResource(gvr).Informer().AddEventHandler(h); err != nil {
			return err
		}
	}
	if err := c.fleetInf.ForResource(v1alpha1.Works).Informer().AddIndexers(cache.Indexers{byBinding: indexByBinding}); err != nil {
		return err
	}
	if _, err := c.fleetInf.ForResource(v1alpha1.Works).Informer().AddEventHandler(handler(func(obj any) {
		c.enqueueWork(obj.(*unstructured.Unstructured))
	})); err != nil {
		return err
	}
	// Before the clusters' handlers run, which read it.
	exports, err := c.watchExports(ctx)
	if err != nil {
		return err
	}
	c.exports = exports
	c.fleetInf.Start(ctx.Done())
	defer c.fleetInf.Shutdown()
	defer c.tmplInf.Shutdown()
	for gvr, ok := range c.fleetInf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("fleet: %s did not sync", gvr.Resource)
		}
	}
	c.enqueueAllExports()
	c.cfg.Log.Info("fleet controller started")

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	wg.Go(func() { c.monitorClusters(ctx) })
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(k)
	requeue, err := c.reconcile(ctx, k)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.cfg.Log.Warn("fleet: sync failed; retrying", "resource", k.String(), "err", err)
		}
		c.queue.AddRateLimited(k)
	case requeue > 0:
		c.queue.Forget(k)
		c.queue.AddAfter(k, requeue)
	default:
		c.queue.Forget(k)
	}
	return true
}

// clusterChanged reports a change that can change placements: labels,
// spec (taints, region), readiness, or deletion. Heartbeats that only
// refresh capacity do not reschedule.
func clusterChanged(old, obj *unstructured.Unstructured) bool {
	if !equality.Semantic.DeepEqual(old.GetLabels(), obj.GetLabels()) || old.GetDeletionTimestamp() != obj.GetDeletionTimestamp() {
		return true
	}
	os, _, _ := unstructured.NestedMap(old.Object, "spec")
	ns, _, _ := unstructured.NestedMap(obj.Object, "spec")
	if !equality.Semantic.DeepEqual(os, ns) {
		return true
	}
	return readyStatus(old) != readyStatus(obj)
}

func readyStatus(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == v1alpha1.ClusterReady {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// watchSelected starts an informer for every kind a policy selects.
func (c *Controller) watchSelected(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetDeletionTimestamp() != nil {
		return
	}
	var spec v1alpha1.PropagationSpec
	if err := fromUnstructured(u, "spec", &spec); err != nil {
		return
	}
	for _, sel := range spec.ResourceSelectors {
		if _, err := c.watch(sel.APIVersion, sel.Kind); err != nil {
			c.cfg.Log.Warn("fleet: a policy selects a kind the API does not serve", "policy", u.GetNamespace()+"/"+u.GetName(),
				"apiVersion", sel.APIVersion, "kind", sel.Kind, "err", err)
			c.recorder.Eventf(u, corev1.EventTypeWarning, "ResourceKindUnknown", "resourceSelectors: %s %s: %v", sel.APIVersion, sel.Kind, err)
		}
	}
}

// watch returns the informer for apiVersion and kind, started on first use.
func (c *Controller) watch(apiVersion, kind string) (schema.GroupVersionResource, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	m, err := c.mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	}
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	if m.Resource.Group == v1alpha1.Group {
		return schema.GroupVersionResource{}, fmt.Errorf("the fleet's own kinds are not propagated")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.templates[m.Resource]; ok {
		return m.Resource, nil
	}
	inf := c.tmplInf.ForResource(m.Resource).Informer()
	gvr, k := m.Resource, kind
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueTemplate(gvr, k, obj) },
		UpdateFunc: func(old, obj any) {
			// Status writes (ours, from the aggregation) change nothing
			// to place: they are looked at again only once gathered.
			if !statusChangeOnly(old.(*unstructured.Unstructured), obj.(*unstructured.Unstructured)) {
				c.enqueueTemplate(gvr, k, obj)
			} else if u, ok := obj.(*unstructured.Unstructured); ok {
				c.queue.AddAfter(key{GVR: gvr, Kind: k, Namespace: u.GetNamespace(), Name: u.GetName()}, statusCoalesce)
			}
		},
		DeleteFunc: func(obj any) {
			obj = fleet.Unwrap(obj)
			c.enqueueTemplate(gvr, k, obj)
		},
	}); err != nil {
		return schema.GroupVersionResource{}, err
	}
	c.templates[m.Resource] = templateInformer{kind: kind, informer: inf}
	if c.ctx != nil {
		c.tmplInf.Start(c.ctx.Done())
	}
	return m.Resource, nil
}

// statusChangeOnly reports whether n differs from o only in status (and
// the metadata every write changes).
func statusChangeOnly(o, n *unstructured.Unstructured) bool {
	if o.GetGeneration() != n.GetGeneration() || n.GetDeletionTimestamp() != nil ||
		!equality.Semantic.DeepEqual(o.GetLabels(), n.GetLabels()) ||
		!equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) {
		return false
	}
	if o.GetGeneration() != 0 {
		return true
	}
	strip := func(u *unstructured.Unstructured) map[string]any {
		m := map[string]any{}
		for k, v := range u.Object {
			if k != "status" && k != "metadata" {
				m[k] = v
			}
		}
		return m
	}
	return equality.Semantic.DeepEqual(strip(o), strip(n))
}

func (c *Controller) enqueueTemplate(gvr schema.GroupVersionResource, kind string, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	c.queue.Add(key{GVR: gvr, Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName()})
}

// enqueueAllSelected queues every resource of every watched kind.
func (c *Controller) enqueueAllSelected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for gvr, t := range c.templates {
		for _, obj := range t.informer.GetStore().List() {
			c.enqueueTemplate(gvr, t.kind, obj)
		}
	}
}

// enqueueAllBound queues the resource of every binding.
func (c *Controller) enqueueAllBound() {
	for _, gvr := range []schema.GroupVersionResource{v1alpha1.ResourceBindings, v1alpha1.ClusterResourceBindings} {
		for _, obj := range c.store(gvr).List() {
			if k, ok := c.bindingKey(obj.(*unstructured.Unstructured)); ok {
				c.queue.Add(k)
			}
		}
	}
}

// bindingKey is the resource a binding is for.
func (c *Controller) bindingKey(b *unstructured.Unstructured) (key, bool) {
	var ref v1alpha1.ObjectReference
	if err := fromUnstructured(b, "spec.resource", &ref); err != nil || ref.Kind == "" {
		return key{}, false
	}
	gvr, err := c.watch(ref.APIVersion, ref.Kind)
	if err != nil {
		// The kind is no longer served: the binding still has Works to
		// clean up; its key carries the kind, not the resource.
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		gvr = gv.WithResource("")
	}
	return key{GVR: gvr, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}, true
}

func (c *Controller) enqueueWork(w *unstructured.Unstructured) {
	if ns, name, ok := fleet.ParseImportWorkName(w.GetName()); ok {
		c.queue.AddAfter(exportKey(ns, name), statusCoalesce)
		return
	}
	kind, rest, ok := strings.Cut(w.GetAnnotations()[fleet.AnnotationBinding], "/")
	if !ok {
		return
	}
	ns, name, _ := strings.Cut(rest, "/")
	bgvr := v1alpha1.ClusterResourceBindings
	if kind == "ResourceBinding" {
		bgvr = v1alpha1.ResourceBindings
	}
	obj, exists, _ := c.store(bgvr).GetByKey(cache.NewObjectName(ns, name).String())
	if exists {
		if k, ok := c.bindingKey(obj.(*unstructured.Unstructured)); ok {
			// The clusters' reports of one change arrive together:
			// fold them into one pass.
			c.queue.AddAfter(k, statusCoalesce)
		}
	}
}

// bindingName is Karmada's: NAME-KIND.
func bindingName(k key) string { return k.Name + "-" + strings.ToLower(k.Kind) }

func bindingGVR(k key) (schema.GroupVersionResource, string) {
	if k.Namespace == "" {
		return v1alpha1.ClusterResourceBindings, "ClusterResourceBinding"
	}
	return v1alpha1.ResourceBindings, "ResourceBinding"
}

// workName is NAME-KIND-HASH: unique per binding within an execution
// namespace, whatever the resource's namespace and group.
func workName(k key) string {
	sum := sha256.Sum256([]byte(k.GVR.Group + "/" + k.Kind + "/" + k.Namespace + "/" + k.Name))
	base := k.Name + "-" + strings.ToLower(k.Kind)
	if len(base) > 200 {
		base = base[:200]
	}
	return base + "-" + hex.EncodeToString(sum[:])[:10]
}

func fromUnstructured(u *unstructured.Unstructured, path string, into any) error {
	v, found, err := unstructured.NestedFieldNoCopy(u.Object, strings.Split(path, ".")...)
	if err != nil || !found {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s is not an object", path)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, into)
}

func toMap(v any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(v)
}

// clusters lists the registered clusters that are not being deleted.
func (c *Controller) clusters() []v1alpha1.Cluster {
	var out []v1alpha1.Cluster
	for _, obj := range c.store(v1alpha1.Clusters).List() {
		u := obj.(*unstructured.Unstructured)
		if u.GetDeletionTimestamp() != nil {
			continue
		}
		var cl v1alpha1.Cluster
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cl); err == nil {
			out = append(out, cl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// policy is the (Cluster)PropagationPolicy that places a resource.
type policy struct {
	ref  v1alpha1.PolicyReference
	spec v1alpha1.PropagationSpec
}

// matchPolicy picks the policy for obj: PropagationPolicies of its
// namespace beat ClusterPropagationPolicies; within each, the higher
// spec.priority, then the more specific selector (name, then label
// selector, then kind only), then the name in alphabetical order.
func (c *Controller) matchPolicy(obj *unstructured.Unstructured) *policy {
	type candidate struct {
		policy
		priority    int32
		specificity int
	}
	best := func(gvr schema.GroupVersionResource, kind string, namespaced bool) *policy {
		var cands []candidate
		for _, o := range c.store(gvr).List() {
			u := o.(*unstructured.Unstructured)
			if u.GetDeletionTimestamp() != nil || namespaced && u.GetNamespace() != obj.GetNamespace() {
				continue
			}
			var spec v1alpha1.PropagationSpec
			if err := fromUnstructured(u, "spec", &spec); err != nil {
				continue
			}
			spec2 := -1
			for _, sel := range spec.ResourceSelectors {
				if !namespaced || sel.Namespace == "" || sel.Namespace == obj.GetNamespace() {
					if override.Selects(sel, obj) {
						spec2 = max(spec2, specificity(sel))
					}
				}
			}
			if spec2 < 0 {
				continue
			}
			cands = append(cands, candidate{
				policy:      policy{ref: v1alpha1.PolicyReference{Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName()}, spec: spec},
				priority:    ptr.Deref(spec.Priority, 0),
				specificity: spec2,
			})
		}
		if len(cands) == 0 {
			return nil
		}
		slices.SortFunc(cands, func(a, b candidate) int {
			if a.priority != b.priority {
				return int(b.priority - a.priority)
			}
			if a.specificity != b.specificity {
				return b.specificity - a.specificity
			}
			return strings.Compare(a.ref.Name, b.ref.Name)
		})
		return &cands[0].policy
	}
	if obj.GetNamespace() != "" {
		if p := best(v1alpha1.PropagationPolicies, "PropagationPolicy", true); p != nil {
			return p
		}
	}
	return best(v1alpha1.ClusterPropagationPolicies, "ClusterPropagationPolicy", false)
}

func specificity(sel v1alpha1.ResourceSelector) int {
	switch {
	case sel.Name != "":
		return 2
	case sel.LabelSelector != nil:
		return 1
	}
	return 0
}

// overridePolicies lists the override policies that may apply to obj.
func (c *Controller) overridePolicies(obj *unstructured.Unstructured) []override.Policy {
	var out []override.Policy
	for _, gvr := range []schema.GroupVersionResource{v1alpha1.ClusterOverridePolicies, v1alpha1.OverridePolicies} {
		for _, o := range c.store(gvr).List() {
			u := o.(*unstructured.Unstructured)
			if u.GetNamespace() != "" && u.GetNamespace() != obj.GetNamespace() {
				continue
			}
			var spec v1alpha1.OverrideSpec
			if err := fromUnstructured(u, "spec", &spec); err != nil {
				continue
			}
			out = append(out, override.Policy{Namespace: u.GetNamespace(), Name: u.GetName(), Spec: spec})
		}
	}
	return out
}

// template returns the resource from its informer, nil if absent.
func (c *Controller) template(k key) (*unstructured.Unstructured, error) {
	c.mu.Lock()
	t, ok := c.templates[k.GVR]
	c.mu.Unlock()
	if !ok {
		return nil, nil
	}
	if !t.informer.HasSynced() {
		if !cache.WaitForCacheSync(c.ctx.Done(), t.informer.HasSynced) {
			return nil, c.ctx.Err()
		}
	}
	obj, exists, err := t.informer.GetStore().GetByKey(cache.NewObjectName(k.Namespace, k.Name).String())
	if err != nil || !exists {
		return nil, err
	}
	return obj.(*unstructured.Unstructured), nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// labelSelectorFor selects the Works of a binding.
func labelSelectorFor(uid string) string {
	return labels.Set{fleet.LabelBindingUID: uid}.String()
}
