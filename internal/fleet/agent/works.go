package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/skiffdev/skiff/internal/fleet"
	"github.com/skiffdev/skiff/internal/fleet/aggregate"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// run is one run of the agent: registration, heartbeats and the Works.
func (a *agent) run(ctx context.Context) error {
	upKube, err := kubernetes.NewForConfig(a.up)
	if err != nil {
		return err
	}
	upDyn, err := dynamic.NewForConfig(a.up)
	if err != nil {
		return err
	}
	localDyn, err := dynamic.NewForConfig(a.cfg.Local)
	if err != nil {
		return err
	}
	if err := a.register(ctx, upDyn); err != nil {
		return err
	}
	a.log.Info("fleet agent connected to the upstream")
	w := &worker{
		agent:    a,
		up:       upDyn,
		local:    localDyn,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(a.local.Discovery())),
		localInf: dynamicinformer.NewFilteredDynamicSharedInformerFactory(localDyn, 0, metav1.NamespaceAll, func(o *metav1.ListOptions) { o.LabelSelector = fleet.LabelManaged + "=true" }),
		queue:    workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "fleet-agent"}),
		watched:  map[schema.GroupVersionResource]bool{},
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.heartbeat(ctx, upKube, upDyn); err != nil {
			cancel(err)
		}
	})
	wg.Go(func() {
		if err := w.run(ctx); err != nil {
			cancel(err)
		}
	})
	wg.Go(func() { a.serveTunnel(ctx) })
	wg.Go(func() {
		// Multi-cluster services: the cluster serves ServiceExport and
		// ServiceImport once it joined. A cluster that refuses the CRDs
		// (an agent without the rights) still runs its Works.
		ext, err := apiextensions.NewForConfig(a.cfg.Local)
		if err == nil {
			err = fleet.InstallMCSCRDs(ctx, ext)
		}
		if err != nil {
			a.log.Warn("fleet agent: install the multi-cluster services API; ServiceExports are not published", "err", err)
			return
		}
		if err := a.services(ctx, upKube, localDyn); err != nil {
			a.log.Warn("fleet agent: multi-cluster services stopped", "err", err)
		}
	})
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// worker applies the cluster's Works.
type worker struct {
	*agent
	up, local dynamic.Interface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	upInf     dynamicinformer.DynamicSharedInformerFactory
	localInf  dynamicinformer.DynamicSharedInformerFactory
	// works is the Works informer's store with this agent's own writes
	// laid over it until the informer catches up: a Work synced again
	// right after its status was written (its copy's creation in the
	// downstream brings it back at once) is then read as written, not as
	// it was, which would write the same status again and be refused as
	// a conflict.
	works cache.MutationCache
	queue workqueue.TypedRateLimitingInterface[string]
	ctx   context.Context

	mu      sync.Mutex
	watched map[schema.GroupVersionResource]bool // guarded by mu
	// namespaces are those known to exist (a deleted one is created again
	// by the apply's error and retry).
	namespaces sync.Map
	// appliedRV is, per copy (copyKey), the resourceVersion it had after
	// this agent's last apply or check of it: a copy still at that
	// version has not drifted, and needs no dry run to say so.
	appliedRV sync.Map
}

func (w *worker) run(ctx context.Context) error {
	w.ctx = ctx
	defer w.queue.ShutDown()
	ns := fleet.ExecutionNamespace(w.cluster)
	w.upInf = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.up, 0, ns, nil)
	works := w.upInf.ForResource(v1alpha1.Works).Informer()
	enqueue := func(obj any) {
		obj = fleet.Unwrap(obj)
		if u, ok := obj.(*unstructured.Unstructured); ok {
			w.queue.Add(u.GetName())
		}
	}
	if _, err := works.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, o any) {
			// A change of the status alone is this agent's own report:
			// nothing to apply (a change in the downstream comes through
			// the local informers).
			if ou, nu := old.(*unstructured.Unstructured), o.(*unstructured.Unstructured); ou.GetGeneration() == nu.GetGeneration() &&
				equality.Semantic.DeepEqual(ou.GetFinalizers(), nu.GetFinalizers()) && nu.GetDeletionTimestamp() == nil &&
				equality.Semantic.DeepEqual(ou.GetAnnotations(), nu.GetAnnotations()) && ou.GetResourceVersion() != nu.GetResourceVersion() {
				return
			}
			enqueue(o)
		},
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	w.works = cache.NewIntegerResourceVersionMutationCacheWithOptions(klog.FromContext(ctx), works.GetStore(),
		cache.MutationCacheOptions{TTL: time.Minute, MaxCacheSize: 4096})
	w.upInf.Start(ctx.Done())
	defer w.upInf.Shutdown()
	defer w.localInf.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), works.HasSynced) {
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
	return nil
}

func (w *worker) next(ctx context.Context) bool {
	name, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(name)
	if err := w.sync(ctx, name); err != nil {
		if ctx.Err() == nil {
			w.log.Warn("fleet agent: apply a Work; retrying", "work", name, "err", err)
		}
		w.queue.AddRateLimited(name)
		return true
	}
	w.queue.Forget(name)
	return true
}

// watchLocal starts an informer on the downstream's copies of a kind, so
// that a change made there brings its Work back.
func (w *worker) watchLocal(gvr schema.GroupVersionResource) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[gvr] {
		return
	}
	w.watched[gvr] = true
	inf := w.localInf.ForResource(gvr).Informer()
	enqueue := func(obj any) {
		obj = fleet.Unwrap(obj)
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		if ns, name, ok := strings.Cut(u.GetAnnotations()[fleet.AnnotationWork], "/"); ok && ns == fleet.ExecutionNamespace(w.cluster) {
			w.queue.Add(name)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	})
	w.localInf.Start(w.ctx.Done())
}

// sync applies one Work, or deletes its copies when it is being deleted,
// and reports the copies' state.
func (w *worker) sync(ctx context.Context, name string) error {
	ns := fleet.ExecutionNamespace(w.cluster)
	obj, exists, err := w.works.GetByKey(ns + "/" + name)
	if err != nil || !exists {
		return err
	}
	work := obj.(*unstructured.Unstructured).DeepCopy()
	api := w.up.Resource(v1alpha1.Works).Namespace(ns)
	var spec v1alpha1.WorkSpec
	if m, ok := work.Object["spec"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec); err != nil {
			return err
		}
	}
	manifests := make([]*unstructured.Unstructured, 0, len(spec.Workload.Manifests))
	for _, m := range spec.Workload.Manifests {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(m.Raw); err != nil {
			return fmt.Errorf("work %s: a manifest does not decode: %w", name, err)
		}
		manifests = append(manifests, u)
	}
	ref := ns + "/" + name
	if work.GetDeletionTimestamp() != nil {
		if !slices.Contains(work.GetFinalizers(), fleet.FinalizerAgent) {
			return nil
		}
		if spec.PreserveResourcesOnDeletion == nil || !*spec.PreserveResourcesOnDeletion {
			for _, m := range manifests {
				if err := w.deleteCopy(ctx, m, ref); err != nil {
					return err
				}
			}
		}
		work.SetFinalizers(slices.DeleteFunc(work.GetFinalizers(), func(f string) bool { return f == fleet.FinalizerAgent }))
		_, err := api.Update(ctx, work, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if !slices.Contains(work.GetFinalizers(), fleet.FinalizerAgent) {
		work.SetFinalizers(append(work.GetFinalizers(), fleet.FinalizerAgent))
		updated, err := api.Update(ctx, work, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		if err != nil {
			return err
		}
		w.works.Mutation(updated)
		work = updated
	}

	var st v1alpha1.WorkStatus
	if m, ok := work.Object["status"].(map[string]any); ok {
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(m, &st)
	}
	old := st.DeepCopy()
	applied := meta.FindStatusCondition(st.Conditions, v1alpha1.Applied)
	// A Work this agent applied at its current generation: any difference
	// in the downstream is a drift, not news from the upstream.
	settled := applied != nil && applied.Status == metav1.ConditionTrue && applied.ObservedGeneration == work.GetGeneration()
	st.ManifestStatuses = nil
	var failures, drifts []string
	reason := "AppliedSuccessful"
	for i, m := range manifests {
		res, err := w.apply(ctx, m, ref, spec, settled)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s %s: %v", m.GetKind(), objName(m), err))
			var ae *applyError
			if errors.As(err, &ae) {
				reason = ae.reason
			} else {
				reason = "AppliedFailed"
			}
			continue
		}
		if res.drift != "" {
			drifts = append(drifts, fmt.Sprintf("%s %s %s", m.GetKind(), objName(m), res.drift))
		}
		gvk := m.GroupVersionKind()
		ms := v1alpha1.ManifestStatus{
			Identifier: v1alpha1.ResourceIdentifier{Ordinal: i, Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
				Resource: res.gvr.Resource, Namespace: m.GetNamespace(), Name: m.GetName(), Generation: res.live.GetGeneration()},
		}
		status, _, _ := unstructured.NestedMap(res.live.Object, "status")
		if status != nil {
			b, err := json.Marshal(status)
			if err != nil {
				return err
			}
			ms.Status = &runtime.RawExtension{Raw: b}
		}
		ms.Health = aggregate.Health(gvk, res.live.GetGeneration(), status)
		st.ManifestStatuses = append(st.ManifestStatuses, ms)
	}
	cond := metav1.Condition{Type: v1alpha1.Applied, Status: metav1.ConditionTrue, Reason: reason, Message: "applied every manifest", ObservedGeneration: work.GetGeneration()}
	if len(failures) > 0 {
		cond = metav1.Condition{Type: v1alpha1.Applied, Status: metav1.ConditionFalse, Reason: reason, Message: strings.Join(failures, "; "), ObservedGeneration: work.GetGeneration()}
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	switch {
	case len(drifts) > 0 && spec.DriftPolicy == v1alpha1.DriftReport:
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionTrue, Reason: "DriftDetected",
			Message: strings.Join(drifts, "; "), ObservedGeneration: work.GetGeneration()})
	case len(drifts) > 0:
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionFalse, Reason: "DriftReverted",
			Message: "reverted at " + time.Now().UTC().Format(time.RFC3339) + ": " + strings.Join(drifts, "; "), ObservedGeneration: work.GetGeneration()})
	case meta.FindStatusCondition(st.Conditions, v1alpha1.Drifted) != nil && meta.FindStatusCondition(st.Conditions, v1alpha1.Drifted).Status == metav1.ConditionTrue && len(failures) == 0:
		// A Report-mode drift the downstream undid.
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionFalse, Reason: "InSync",
			Message: "the copies match the upstream", ObservedGeneration: work.GetGeneration()})
	}
	if equality.Semantic.DeepEqual(old, &st) {
		return nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	work.Object["status"] = m
	updated, err := api.UpdateStatus(ctx, work, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	if err == nil {
		w.works.Mutation(updated)
	}
	if apierrors.IsConflict(err) {
		w.queue.Add(name) // the next version brings us back anyway
		return nil
	}
	return err
}

func objName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// applyError is a refusal the Work's status names by reason.
type applyError struct {
	reason string
	err    error
}

func (e *applyError) Error() string { return e.err.Error() }

type applied struct {
	gvr   schema.GroupVersionResource
	live  *unstructured.Unstructured
	drift string // what differed, when the copy had drifted
}

func (w *worker) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, schema.GroupVersionResource, error) {
	gvk := u.GroupVersionKind()
	m, err := w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		w.mapper.Reset()
		m, err = w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, schema.GroupVersionResource{}, &applyError{"KindNotServed", fmt.Errorf("the cluster does not serve %s %s (a missing CRD?)", gvk.GroupVersion(), gvk.Kind)}
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return w.local.Resource(m.Resource).Namespace(u.GetNamespace()), m.Resource, nil
	}
	return w.local.Resource(m.Resource), m.Resource, nil
}

// apply puts one manifest into the downstream with server-side apply.
// settled says the Work was applied before at this generation: then a
// difference is a drift, reverted or only reported by the Work's policy.
func (w *worker) apply(ctx context.Context, m *unstructured.Unstructured, ref string, spec v1alpha1.WorkSpec, settled bool) (applied, error) {
	res, gvr, err := w.resource(m)
	if err != nil {
		return applied{}, err
	}
	w.watchLocal(gvr)
	m = m.DeepCopy()
	l := m.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[fleet.LabelManaged] = "true"
	m.SetLabels(l)
	a := m.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[fleet.AnnotationWork] = ref
	m.SetAnnotations(a)

	live, err := w.cached(gvr, m)
	if live == nil && err == nil {
		live, err = res.Get(ctx, m.GetName(), metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		live = nil
		if ns := m.GetNamespace(); ns != "" {
			if err := w.ensureNamespace(ctx, ns); err != nil {
				return applied{}, err
			}
		}
	case err != nil:
		return applied{}, err
	case live.GetAnnotations()[fleet.AnnotationWork] != ref && spec.ConflictResolution != v1alpha1.ConflictOverwrite:
		return applied{}, &applyError{"Conflict", fmt.Errorf("exists in the cluster and was not put there by the fleet (conflictResolution Abort; Overwrite takes it over)")}
	}
	body, err := json.Marshal(m.Object)
	if err != nil {
		return applied{}, err
	}
	opts := metav1.PatchOptions{FieldManager: fleet.FieldManager, Force: new(true)}
	out := applied{gvr: gvr}
	// A Work that changed is applied as it is; one applied before is
	// first compared (a dry run) to see whether the copy drifted.
	key := copyKey(gvr, m)
	if live != nil && settled {
		if rv, ok := w.appliedRV.Load(key); ok && rv == live.GetResourceVersion() {
			out.live = live
			return out, nil
		}
		dry, err := res.Patch(ctx, m.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fleet.FieldManager, Force: new(true), DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return applied{}, refusal(err)
		}
		if same(dry, live) {
			w.appliedRV.Store(key, live.GetResourceVersion())
			out.live = live
			return out, nil
		}
		out.drift = "changed in the cluster"
		if spec.DriftPolicy == v1alpha1.DriftReport {
			out.live = live
			return out, nil
		}
	}
	got, err := res.Patch(ctx, m.GetName(), types.ApplyPatchType, body, opts)
	if apierrors.IsNotFound(err) {
		w.namespaces.Delete(m.GetNamespace()) // gone since: the retry creates it
	}
	if err != nil {
		return applied{}, refusal(err)
	}
	w.appliedRV.Store(key, got.GetResourceVersion())
	out.live = got
	return out, nil
}

// copyKey names a copy in the downstream for appliedRV.
func copyKey(gvr schema.GroupVersionResource, m *unstructured.Unstructured) string {
	return gvr.String() + " " + objName(m)
}

// cached is the downstream's copy of m from the informer on the agent's
// objects; nil (not an error) when it is not there, which the caller
// checks with the API (an object the fleet did not create is not cached).
func (w *worker) cached(gvr schema.GroupVersionResource, m *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	inf := w.localInf.ForResource(gvr).Informer()
	if !inf.HasSynced() {
		return nil, nil
	}
	obj, ok, err := inf.GetStore().GetByKey(cache.NewObjectName(m.GetNamespace(), m.GetName()).String())
	if err != nil || !ok {
		return nil, err
	}
	return obj.(*unstructured.Unstructured), nil
}

// refusal names an API refusal (quota, admission, validation) by reason.
func refusal(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return &applyError{"Forbidden", err}
	case apierrors.IsInvalid(err):
		return &applyError{"Invalid", err}
	}
	return err
}

// same reports whether a dry run of the apply leaves the object as it is.
func same(dry, live *unstructured.Unstructured) bool {
	clean := func(u *unstructured.Unstructured) map[string]any {
		c := runtime.DeepCopyJSON(u.Object)
		delete(c, "status")
		if md, ok := c["metadata"].(map[string]any); ok {
			for _, f := range []string{"resourceVersion", "managedFields", "generation", "creationTimestamp", "uid"} {
				delete(md, f)
			}
		}
		return c
	}
	return equality.Semantic.DeepEqual(clean(dry), clean(live))
}

func (w *worker) ensureNamespace(ctx context.Context, ns string) error {
	if _, ok := w.namespaces.Load(ns); ok {
		return nil
	}
	_, err := w.local.Resource(corev1.SchemeGroupVersion.WithResource("namespaces")).Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		w.namespaces.Store(ns, true)
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(ns)
	u.SetLabels(map[string]string{fleet.LabelManaged: "true"})
	_, err = w.local.Resource(corev1.SchemeGroupVersion.WithResource("namespaces")).Create(ctx, u, metav1.CreateOptions{FieldManager: fleet.FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// deleteCopy deletes the downstream's copy of a manifest if this Work put
// it there.
func (w *worker) deleteCopy(ctx context.Context, m *unstructured.Unstructured, ref string) error {
	res, gvr, err := w.resource(m)
	if err != nil {
		return nil // the kind is gone, and its objects with it
	}
	w.appliedRV.Delete(copyKey(gvr, m))
	live, err := res.Get(ctx, m.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if live.GetAnnotations()[fleet.AnnotationWork] != ref {
		return nil
	}
	err = res.Delete(ctx, m.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: new(live.GetUID())}, PropagationPolicy: new(metav1.DeletePropagationBackground)})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
