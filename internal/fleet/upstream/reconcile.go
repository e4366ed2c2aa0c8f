package upstream

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/internal/fleet"
	"github.com/skiffdev/skiff/internal/fleet/aggregate"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/fleet/override"
	"github.com/skiffdev/skiff/internal/fleet/placement"
)

// reconcile brings one resource's binding, Works and aggregated status in
// line with its policy, the clusters and what their agents report. It
// returns how soon to look again when the placement will change by itself
// (a toleration running out).
func (c *Controller) reconcile(ctx context.Context, k key) (time.Duration, error) {
	if k.Kind == mcsKind {
		return 0, c.syncImport(ctx, k)
	}
	bgvr, bkind := bindingGVR(k)
	bname := bindingName(k)
	var binding *unstructured.Unstructured
	if obj, ok, _ := c.store(bgvr).GetByKey(cache.NewObjectName(k.Namespace, bname).String()); ok {
		binding = obj.(*unstructured.Unstructured).DeepCopy()
	}
	var tmpl *unstructured.Unstructured
	if k.GVR.Resource != "" {
		t, err := c.template(k)
		if err != nil {
			return 0, err
		}
		tmpl = t
	}
	var pol *policy
	if tmpl != nil && tmpl.GetDeletionTimestamp() == nil {
		pol = c.matchPolicy(tmpl)
	}
	if pol == nil {
		// Deleted, or no policy selects it (any more): its copies go.
		if binding == nil {
			return 0, nil
		}
		return 0, c.unbind(ctx, bgvr, binding)
	}
	if binding != nil && binding.GetDeletionTimestamp() != nil {
		// Deleted by hand or by the garbage collector while the
		// resource lives on: clean up, the next pass binds again.
		return 0, c.unbind(ctx, bgvr, binding)
	}

	var prev v1alpha1.ResourceBindingSpec
	if binding != nil {
		_ = fromUnstructured(binding, "spec", &prev)
	}
	gvk := schema.FromAPIVersionAndKind(tmpl.GetAPIVersion(), tmpl.GetKind())
	replicas, request := workload(tmpl)
	clusters := c.clusters()
	pl := pol.spec.Placement
	ret := v1alpha1.ReturnImmediate
	failoverStatefulSets := false
	if f := pol.spec.Failover; f != nil && f.Cluster != nil {
		ret = cmp.Or(f.Cluster.Return, ret)
		failoverStatefulSets = f.Cluster.StatefulSets
	}
	if gvk.Kind == "StatefulSet" && gvk.Group == "apps" && !failoverStatefulSets {
		// A partitioned cluster may still run its copy: never move a
		// StatefulSet's identities unless the policy says so.
		pl.ClusterTolerations = append(slices.Clone(pl.ClusterTolerations),
			corev1.Toleration{Key: v1alpha1.TaintNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			corev1.Toleration{Key: v1alpha1.TaintUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	}
	now := time.Now()
	failedOver := prev.FailedOver
	if ret == v1alpha1.ReturnNever && len(failedOver) > 0 {
		clusters = slices.DeleteFunc(clusters, func(cl v1alpha1.Cluster) bool {
			return slices.ContainsFunc(failedOver, func(f v1alpha1.FailedOverCluster) bool { return f.Name == cl.Name })
		})
	}
	res := placement.Schedule(placement.Input{
		Placement:                 pl,
		Replicas:                  replicas,
		Request:                   request,
		Clusters:                  clusters,
		Previous:                  prev.Clusters,
		Returning:                 failedOverNames(failedOver),
		Now:                       now,
		DefaultNotReadyToleration: c.cfg.DefaultNotReadyToleration,
	})
	for _, name := range res.Evicted {
		if !slices.ContainsFunc(failedOver, func(f v1alpha1.FailedOverCluster) bool { return f.Name == name }) {
			failedOver = append(failedOver, v1alpha1.FailedOverCluster{Name: name, Time: metav1.NewTime(now)})
			c.recorder.Eventf(tmpl, corev1.EventTypeWarning, "FailedOver", "cluster %s is not Ready beyond its toleration: its share moved to the other clusters", name)
		}
	}
	switch ret {
	case v1alpha1.ReturnImmediate:
		// Back on a Ready cluster: it is no longer failed over.
		failedOver = slices.DeleteFunc(failedOver, func(f v1alpha1.FailedOverCluster) bool {
			return slices.ContainsFunc(res.Clusters, func(t v1alpha1.TargetCluster) bool { return t.Name == f.Name })
		})
	case v1alpha1.ReturnGradual:
		failedOver = c.rampReturn(tmpl, pol.spec.Failover.Cluster, &res, prev.Clusters, failedOver, now)
	}
	spec := v1alpha1.ResourceBindingSpec{
		Resource: v1alpha1.ObjectReference{
			APIVersion: tmpl.GetAPIVersion(), Kind: tmpl.GetKind(), Namespace: tmpl.GetNamespace(), Name: tmpl.GetName(),
			UID: tmpl.GetUID(), ResourceVersion: tmpl.GetResourceVersion(),
		},
		Policy:                      &pol.ref,
		Replicas:                    replicas,
		Placement:                   &pol.spec.Placement,
		Clusters:                    res.Clusters,
		ConflictResolution:          cmp.Or(pol.spec.ConflictResolution, v1alpha1.ConflictAbort),
		DriftPolicy:                 cmp.Or(pol.spec.DriftPolicy, v1alpha1.DriftRevert),
		PreserveResourcesOnDeletion: pol.spec.PreserveResourcesOnDeletion,
		FailedOver:                  failedOver,
	}
	if len(request) > 0 {
		spec.ReplicaRequirements = &v1alpha1.ReplicaRequirements{ResourceRequest: request}
	}
	if res.Unschedulable != "" && binding != nil {
		// Keep where it is rather than remove every copy because, say,
		// capacity is short right now.
		spec.Clusters = prev.Clusters
	}
	binding, err := c.upsertBinding(ctx, bgvr, bkind, bname, tmpl, binding, spec)
	if err != nil {
		return 0, err
	}

	// One Work per chosen cluster; the others' go.
	ops := c.overridePolicies(tmpl)
	var deps []*unstructured.Unstructured
	if pol.spec.PropagateDeps == nil || *pol.spec.PropagateDeps {
		deps = c.dependencyManifests(ctx, tmpl)
	}
	byName := map[string]*v1alpha1.Cluster{}
	for i := range clusters {
		byName[clusters[i].Name] = &clusters[i]
	}
	failures := map[string]string{}
	want := map[string]bool{}
	var (
		jobs []func()
		mu   sync.Mutex // guards failures while jobs run
	)
	for _, t := range spec.Clusters {
		want[fleet.ExecutionNamespace(t.Name)] = true
		cl := byName[t.Name]
		if cl == nil {
			failures[t.Name] = "the cluster is not registered"
			continue
		}
		obj := override.Strip(tmpl)
		if replicas > 0 {
			if err := unstructured.SetNestedField(obj.Object, int64(t.Replicas), "spec", "replicas"); err != nil {
				return 0, err
			}
		}
		objs := []*unstructured.Unstructured{obj}
		for _, d := range deps {
			objs = append(objs, override.Strip(d))
		}
		var oerr error
		for _, o := range objs {
			if _, err := override.Apply(o, cl, ops); err != nil {
				oerr = err
				break
			}
		}
		if oerr != nil {
			failures[t.Name] = oerr.Error()
			c.recorder.Eventf(tmpl, corev1.EventTypeWarning, "ApplyOverridePolicyFailed", "cluster %s: %v", t.Name, oerr)
			continue
		}
		// The Works go out in parallel: with many clusters, one after
		// the other would add up to the propagation time.
		jobs = append(jobs, func() {
			if err := c.upsertWork(ctx, k, binding, bkind, t.Name, objs, spec, tmpl.GetGeneration()); err != nil {
				mu.Lock()
				failures[t.Name] = err.Error()
				mu.Unlock()
			}
		})
	}
	parallel(jobs, workWriters)
	if err := c.deleteWorks(ctx, string(binding.GetUID()), want); err != nil {
		return 0, err
	}
	if err := c.updateStatus(ctx, k, bgvr, binding, tmpl, gvk, spec, res, failures); err != nil {
		return 0, err
	}
	return res.RecheckAfter, nil
}

// rampReturn takes, for a Gradual return, the next step of each failed
// over cluster that is placed again (a part of its share every
// returnStepSeconds, the rest staying where failover moved it), records
// the step's time, and drops from failedOver the clusters whose share is
// whole again. It sets res.RecheckAfter to the next step's time.
func (c *Controller) rampReturn(tmpl *unstructured.Unstructured, f *v1alpha1.ClusterFailoverBehavior, res *placement.Result, previous []v1alpha1.TargetCluster,
	failedOver []v1alpha1.FailedOverCluster, now time.Time) []v1alpha1.FailedOverCluster {
	interval := time.Duration(ptr.Deref(f.ReturnStepSeconds, 30)) * time.Second
	percent := ptr.Deref(f.ReturnStepPercent, 25)
	failedOver = slices.Clone(failedOver)
	returning, due := map[string]bool{}, map[string]bool{}
	for _, fo := range failedOver {
		if !slices.ContainsFunc(res.Clusters, func(t v1alpha1.TargetCluster) bool { return t.Name == fo.Name }) {
			continue
		}
		returning[fo.Name] = true
		if fo.ReturnStep == nil || now.Sub(fo.ReturnStep.Time) >= interval {
			due[fo.Name] = true
		} else if wait := interval - now.Sub(fo.ReturnStep.Time); res.RecheckAfter == 0 || wait < res.RecheckAfter {
			res.RecheckAfter = wait
		}
	}
	if len(returning) == 0 {
		return failedOver
	}
	ramped, done := placement.Ramp(res.Clusters, previous, returning, func(name string, target int32) int32 {
		if !due[name] {
			return 0
		}
		return max(1, int32((int64(target)*int64(percent)+99)/100))
	})
	res.Clusters = ramped
	for i := range failedOver {
		name := failedOver[i].Name
		if due[name] && !done[name] {
			failedOver[i].ReturnStep = &metav1.Time{Time: now}
			if res.RecheckAfter == 0 || interval < res.RecheckAfter {
				res.RecheckAfter = interval
			}
		}
		if done[name] {
			c.recorder.Eventf(tmpl, corev1.EventTypeNormal, "Returned", "cluster %s has its whole share again", name)
		}
	}
	return slices.DeleteFunc(failedOver, func(fo v1alpha1.FailedOverCluster) bool { return done[fo.Name] })
}

func failedOverNames(fs []v1alpha1.FailedOverCluster) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// workWriters is how many Works of one resource are written at once.
const workWriters = 16

// parallel runs jobs, at most n at a time, and waits for them.
func parallel(jobs []func(), n int) {
	if len(jobs) == 1 {
		jobs[0]()
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			j()
		})
	}
	wg.Wait()
}

// workload is a resource's spec.replicas and one replica's requests, when
// it has both a replica count and a pod template (Deployment, StatefulSet,
// ReplicaSet and custom kinds shaped alike); 0 otherwise.
func workload(u *unstructured.Unstructured) (int32, corev1.ResourceList) {
	r, found, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "replicas")
	if err != nil || !found {
		if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "template"); !ok || u.GetKind() != "Deployment" && u.GetKind() != "StatefulSet" && u.GetKind() != "ReplicaSet" {
			return 0, nil
		}
		r = int64(1) // the API's default
	}
	var n int64
	switch v := r.(type) {
	case int64:
		n = v
	case float64:
		n = int64(v)
	default:
		return 0, nil
	}
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		return 0, nil
	}
	request := corev1.ResourceList{}
	for _, c := range containers {
		req, _, _ := unstructured.NestedStringMap(c.(map[string]any), "resources", "requests")
		for name, v := range req {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				continue
			}
			sum := request[corev1.ResourceName(name)]
			sum.Add(q)
			request[corev1.ResourceName(name)] = sum
		}
	}
	if n == 0 {
		// A workload scaled to zero still places; 0 would read as "not a
		// workload", so it is scheduled as one replica with zero shares.
		return 0, request
	}
	return int32(n), request
}

func (c *Controller) upsertBinding(ctx context.Context, gvr schema.GroupVersionResource, kind, name string, tmpl, old *unstructured.Unstructured, spec v1alpha1.ResourceBindingSpec) (*unstructured.Unstructured, error) {
	m, err := toMap(&spec)
	if err != nil {
		return nil, err
	}
	api := c.cfg.Dynamic.Resource(gvr).Namespace(tmpl.GetNamespace())
	if old == nil {
		b := &unstructured.Unstructured{Object: map[string]any{"spec": m}}
		b.SetAPIVersion(v1alpha1.GroupVersion.String())
		b.SetKind(kind)
		b.SetNamespace(tmpl.GetNamespace())
		b.SetName(name)
		b.SetFinalizers([]string{fleet.FinalizerWorks})
		b.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion: tmpl.GetAPIVersion(), Kind: tmpl.GetKind(), Name: tmpl.GetName(), UID: tmpl.GetUID(),
			Controller: new(true), BlockOwnerDeletion: new(false),
		}})
		created, err := api.Create(ctx, b, metav1.CreateOptions{FieldManager: fleet.FieldManager})
		if err != nil {
			return nil, fmt.Errorf("create %s %s: %w", kind, name, err)
		}
		return created, nil
	}
	oldSpec, _, _ := unstructured.NestedMap(old.Object, "spec")
	// resourceVersion changes with every status write we make: compare
	// without it, or each pass would write again.
	cmpSpec := func(s map[string]any) map[string]any {
		s = runtime.DeepCopyJSON(s)
		if r, ok := s["resource"].(map[string]any); ok {
			delete(r, "resourceVersion")
		}
		return s
	}
	if equality.Semantic.DeepEqual(cmpSpec(oldSpec), cmpSpec(m)) && slices.Contains(old.GetFinalizers(), fleet.FinalizerWorks) {
		return old, nil
	}
	old.Object["spec"] = m
	if !slices.Contains(old.GetFinalizers(), fleet.FinalizerWorks) {
		old.SetFinalizers(append(old.GetFinalizers(), fleet.FinalizerWorks))
	}
	updated, err := api.Update(ctx, old, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", kind, name, err)
	}
	return updated, nil
}

func (c *Controller) upsertWork(ctx context.Context, k key, binding *unstructured.Unstructured, bkind, cluster string, objs []*unstructured.Unstructured, spec v1alpha1.ResourceBindingSpec, generation int64) error {
	var manifests []any
	for _, o := range objs {
		manifests = append(manifests, o.Object)
	}
	m := map[string]any{
		"workload":           map[string]any{"manifests": manifests},
		"conflictResolution": string(spec.ConflictResolution),
		"driftPolicy":        string(spec.DriftPolicy),
	}
	if spec.PreserveResourcesOnDeletion != nil {
		m["preserveResourcesOnDeletion"] = *spec.PreserveResourcesOnDeletion
	}
	ns, name := fleet.ExecutionNamespace(cluster), workName(k)
	api := c.cfg.Dynamic.Resource(v1alpha1.Works).Namespace(ns)
	ann := bkind + "/" + binding.GetNamespace() + "/" + binding.GetName()
	gen := strconv.FormatInt(generation, 10)
	if o, ok, _ := c.store(v1alpha1.Works).GetByKey(cache.NewObjectName(ns, name).String()); ok {
		old := o.(*unstructured.Unstructured)
		oldSpec, _, _ := unstructured.NestedMap(old.Object, "spec")
		if equality.Semantic.DeepEqual(oldSpec, runtime.DeepCopyJSON(m)) && old.GetAnnotations()[fleet.AnnotationBinding] == ann &&
			old.GetAnnotations()[fleet.AnnotationTemplateGeneration] == gen && old.GetDeletionTimestamp() == nil {
			return nil
		}
		if old.GetDeletionTimestamp() != nil {
			return fmt.Errorf("work %s/%s is being deleted", ns, name)
		}
		w := old.DeepCopy()
		w.Object["spec"] = runtime.DeepCopyJSON(m)
		a := w.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[fleet.AnnotationBinding], a[fleet.AnnotationTemplateGeneration] = ann, gen
		w.SetAnnotations(a)
		_, err := api.Update(ctx, w, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		return err
	}
	w := &unstructured.Unstructured{Object: map[string]any{"spec": runtime.DeepCopyJSON(m)}}
	w.SetAPIVersion(v1alpha1.GroupVersion.String())
	w.SetKind("Work")
	w.SetNamespace(ns)
	w.SetName(name)
	w.SetLabels(map[string]string{fleet.LabelBindingUID: string(binding.GetUID())})
	w.SetAnnotations(map[string]string{fleet.AnnotationBinding: ann, fleet.AnnotationTemplateGeneration: gen})
	// The agent's finalizer from the start: it would add it before its
	// first apply, a write on the upstream in the way of every propagation.
	w.SetFinalizers([]string{fleet.FinalizerAgent})
	_, err := api.Create(ctx, w, metav1.CreateOptions{FieldManager: fleet.FieldManager})
	if isNotFound(err) {
		return fmt.Errorf("the execution namespace %s does not exist (the cluster is being removed?)", ns)
	}
	if apierrors.IsAlreadyExists(err) {
		// Written a moment ago, by the pass before this one, and not in
		// the cache yet: its arrival there brings the resource back, and
		// that pass compares it.
		return nil
	}
	return err
}

// deleteWorks deletes the binding's Works outside the namespaces in keep.
// It reports whether none are left.
func (c *Controller) deleteWorks(ctx context.Context, uid string, keep map[string]bool) error {
	for _, o := range c.worksOf(uid) {
		w := o.(*unstructured.Unstructured)
		if keep[w.GetNamespace()] || w.GetDeletionTimestamp() != nil {
			continue
		}
		err := c.cfg.Dynamic.Resource(v1alpha1.Works).Namespace(w.GetNamespace()).Delete(ctx, w.GetName(), metav1.DeleteOptions{})
		if err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// unbind deletes a binding's Works, and the binding once its agents have
// deleted their copies (its finalizer waits for that).
func (c *Controller) unbind(ctx context.Context, gvr schema.GroupVersionResource, binding *unstructured.Unstructured) error {
	uid := string(binding.GetUID())
	if err := c.deleteWorks(ctx, uid, nil); err != nil {
		return err
	}
	if len(c.worksOf(uid)) > 0 {
		return nil // the Work's update (its agent's finalizer gone) brings us back
	}
	api := c.cfg.Dynamic.Resource(gvr).Namespace(binding.GetNamespace())
	if fin := binding.GetFinalizers(); slices.Contains(fin, fleet.FinalizerWorks) {
		binding.SetFinalizers(slices.DeleteFunc(slices.Clone(fin), func(f string) bool { return f == fleet.FinalizerWorks }))
		if _, err := api.Update(ctx, binding, metav1.UpdateOptions{FieldManager: fleet.FieldManager}); err != nil && !isNotFound(err) {
			return err
		}
	}
	if binding.GetDeletionTimestamp() == nil {
		if err := api.Delete(ctx, binding.GetName(), metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// updateStatus folds the Works' reports into the binding's status and the
// resource's own.
func (c *Controller) updateStatus(ctx context.Context, k key, gvr schema.GroupVersionResource, binding, tmpl *unstructured.Unstructured,
	gvk schema.GroupVersionKind, spec v1alpha1.ResourceBindingSpec, res placement.Result, failures map[string]string) error {
	var st v1alpha1.ResourceBindingStatus
	_ = fromUnstructured(binding, "status", &st)
	old := st.DeepCopy()
	st.SchedulerObservedGeneration = binding.GetGeneration()

	sched := metav1.Condition{Type: v1alpha1.Scheduled, Status: metav1.ConditionTrue, Reason: "Success",
		Message: fmt.Sprintf("placed on %d cluster(s) by %s %s", len(spec.Clusters), spec.Policy.Kind, policyName(spec.Policy))}
	if res.Unschedulable != "" {
		sched = metav1.Condition{Type: v1alpha1.Scheduled, Status: metav1.ConditionFalse, Reason: "NoClusterFit", Message: res.Unschedulable}
	}
	setCondition(&st.Conditions, sched, binding.GetGeneration())

	var items []v1alpha1.AggregatedStatusItem
	var copies []aggregate.Copy
	var notApplied, drifted, reverted []string
	var summary []string
	for _, t := range spec.Clusters {
		item := v1alpha1.AggregatedStatusItem{ClusterName: t.Name, Health: v1alpha1.UnknownHealth}
		state := ""
		if msg, ok := failures[t.Name]; ok {
			item.AppliedMessage = msg
			state = "Failed"
		} else if o, ok, _ := c.store(v1alpha1.Works).GetByKey(cache.NewObjectName(fleet.ExecutionNamespace(t.Name), workName(k)).String()); ok {
			var ws v1alpha1.WorkStatus
			w := o.(*unstructured.Unstructured)
			_ = fromUnstructured(w, "status", &ws)
			if ap := meta.FindStatusCondition(ws.Conditions, v1alpha1.Applied); ap != nil {
				item.Applied = ap.Status == metav1.ConditionTrue
				if !item.Applied {
					item.AppliedMessage = ap.Message
					state = ap.Reason
				}
			} else {
				state = "Pending"
			}
			if d := meta.FindStatusCondition(ws.Conditions, v1alpha1.Drifted); d != nil && d.Status == metav1.ConditionTrue {
				drifted = append(drifted, t.Name+": "+d.Message)
			} else if d != nil && d.Reason == "DriftReverted" {
				reverted = append(reverted, t.Name+": "+d.Message)
			}
			// A copy counts as observed only once its agent applied the
			// Work rendered from the resource's current generation.
			cp := aggregate.Copy{Cluster: t.Name}
			current := w.GetAnnotations()[fleet.AnnotationTemplateGeneration] == strconv.FormatInt(tmpl.GetGeneration(), 10)
			if ap := meta.FindStatusCondition(ws.Conditions, v1alpha1.Applied); ap == nil || ap.ObservedGeneration != w.GetGeneration() {
				current = false
			}
			if len(ws.ManifestStatuses) > 0 {
				ms := ws.ManifestStatuses[0]
				item.Status = ms.Status
				item.Health = cmp.Or(ms.Health, v1alpha1.UnknownHealth)
				cp.Generation = ms.Identifier.Generation
				if current && ms.Status != nil && len(ms.Status.Raw) > 0 {
					u := &unstructured.Unstructured{}
					if err := u.UnmarshalJSON(wrapStatus(ms.Status.Raw)); err == nil {
						cp.Status, _, _ = unstructured.NestedMap(u.Object, "status")
					}
				}
			}
			copies = append(copies, cp)
		} else {
			state = "Pending"
			copies = append(copies, aggregate.Copy{Cluster: t.Name})
		}
		if !item.Applied {
			notApplied = append(notApplied, t.Name+": "+cmp.Or(item.AppliedMessage, "not applied yet"))
		}
		s := t.Name
		if spec.Replicas > 0 {
			s += fmt.Sprintf("=%d", t.Replicas)
		}
		if state != "" {
			s += "(" + state + ")"
		}
		summary = append(summary, s)
		items = append(items, item)
	}
	st.AggregatedStatus = items
	st.PlacementSummary = strings.Join(summary, ",")
	applied := metav1.Condition{Type: v1alpha1.FullyApplied, Status: metav1.ConditionTrue, Reason: "FullyAppliedSuccess", Message: "applied on every cluster"}
	if len(notApplied) > 0 {
		applied = metav1.Condition{Type: v1alpha1.FullyApplied, Status: metav1.ConditionFalse, Reason: "FullyAppliedFailed", Message: strings.Join(notApplied, "; ")}
	}
	if len(spec.Clusters) == 0 {
		applied = metav1.Condition{Type: v1alpha1.FullyApplied, Status: metav1.ConditionFalse, Reason: "NoCluster", Message: "placed on no cluster"}
	}
	setCondition(&st.Conditions, applied, binding.GetGeneration())
	switch {
	case len(drifted) > 0:
		setCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionTrue, Reason: "DriftDetected", Message: strings.Join(drifted, "; ")}, binding.GetGeneration())
	case len(reverted) > 0:
		setCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionFalse, Reason: "DriftReverted", Message: strings.Join(reverted, "; ")}, binding.GetGeneration())
	case meta.FindStatusCondition(st.Conditions, v1alpha1.Drifted) != nil:
		setCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.Drifted, Status: metav1.ConditionFalse, Reason: "InSync", Message: "every copy matches the upstream"}, binding.GetGeneration())
	}
	if was, now := meta.FindStatusCondition(old.Conditions, v1alpha1.Drifted), meta.FindStatusCondition(st.Conditions, v1alpha1.Drifted); now != nil && now.Reason != "InSync" && (was == nil || was.Message != now.Message) {
		kind := corev1.EventTypeWarning
		if now.Reason == "DriftReverted" {
			kind = corev1.EventTypeNormal
		}
		c.recorder.Eventf(tmpl, kind, now.Reason, "changed in a downstream cluster: %s", now.Message)
	}
	if !equality.Semantic.DeepEqual(old, &st) {
		m, err := toMap(&st)
		if err != nil {
			return err
		}
		if err := c.writeStatus(ctx, c.cfg.Dynamic.Resource(gvr).Namespace(binding.GetNamespace()), binding.GetName(), m); err != nil {
			return fmt.Errorf("update the status of %s %s: %w", binding.GetKind(), binding.GetName(), err)
		}
	}

	// The resource's own status, as a user of one cluster would read it.
	sort.Slice(copies, func(i, j int) bool { return copies[i].Cluster < copies[j].Cluster })
	current, _, _ := unstructured.NestedMap(tmpl.Object, "status")
	status, ok := aggregate.Status(gvk, tmpl.GetGeneration(), current, copies)
	if !ok || equality.Semantic.DeepEqual(current, status) {
		return nil
	}
	err := c.writeStatus(ctx, c.cfg.Dynamic.Resource(k.GVR).Namespace(tmpl.GetNamespace()), tmpl.GetName(), status)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("update the status of %s %s: %w", tmpl.GetKind(), tmpl.GetName(), err)
	}
	return nil
}

// writeStatus replaces an object's status whatever its resourceVersion
// (a JSON patch on the status subresource): the status is computed afresh
// from the clusters' reports each time, so the last write is the right one,
// and a cache a write behind costs no conflict.
func (c *Controller) writeStatus(ctx context.Context, api dynamic.ResourceInterface, name string, status map[string]any) error {
	body, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": status}})
	if err != nil {
		return err
	}
	_, err = api.Patch(ctx, name, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: fleet.FieldManager}, "status")
	return err
}

// wrapStatus turns a raw status into an object holding it.
func wrapStatus(raw []byte) []byte {
	return append(append([]byte(`{"apiVersion":"v1","kind":"Status_","status":`), raw...), '}')
}

func policyName(p *v1alpha1.PolicyReference) string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// setCondition sets c, observed at generation (the transition time moves
// only when its status does).
func setCondition(conds *[]metav1.Condition, c metav1.Condition, generation int64) {
	c.ObservedGeneration = generation
	meta.SetStatusCondition(conds, c)
}

// byBinding indexes Works by their binding's UID.
const byBinding = "binding"

func indexByBinding(obj any) ([]string, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if uid := u.GetLabels()[fleet.LabelBindingUID]; uid != "" {
			return []string{uid}, nil
		}
	}
	return nil, nil
}

// worksOf lists a binding's Works.
func (c *Controller) worksOf(uid string) []any {
	list, _ := c.fleetInf.ForResource(v1alpha1.Works).Informer().GetIndexer().ByIndex(byBinding, uid)
	return list
}
