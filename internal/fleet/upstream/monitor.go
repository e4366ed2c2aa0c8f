package upstream

import (
	"context"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// monitorInterval is how often the clusters' heartbeats are checked.
const monitorInterval = 2 * time.Second

// monitorClusters marks clusters whose agent stopped renewing its Lease as
// not Ready (Ready=Unknown, as the node lifecycle controller does for
// nodes), keeps each cluster's not-ready/unreachable NoExecute taints in
// line with its Ready condition, and cleans up after deleted clusters.
func (c *Controller) monitorClusters(ctx context.Context) {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	for {
		for _, obj := range c.store(v1alpha1.Clusters).List() {
			u := obj.(*unstructured.Unstructured)
			if err := c.monitor(ctx, u.DeepCopy(), time.Now()); err != nil && ctx.Err() == nil {
				c.cfg.Log.Warn("fleet: cluster health", "cluster", u.GetName(), "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) monitor(ctx context.Context, u *unstructured.Unstructured, now time.Time) error {
	api := c.cfg.Dynamic.Resource(v1alpha1.Clusters)
	if u.GetDeletionTimestamp() != nil {
		return c.removeCluster(ctx, u)
	}
	if !slices.Contains(u.GetFinalizers(), fleet.FinalizerCluster) {
		u.SetFinalizers(append(u.GetFinalizers(), fleet.FinalizerCluster))
		updated, err := api.Update(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		if err != nil {
			return err
		}
		u = updated
	}
	var cl v1alpha1.Cluster
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cl); err != nil {
		return err
	}
	// Heartbeat: the Lease's renew time, else the cluster's creation.
	last := cl.CreationTimestamp.Time
	lease, err := c.cfg.Kube.CoordinationV1().Leases(fleet.ExecutionNamespace(cl.Name)).Get(ctx, fleet.HeartbeatLease, metav1.GetOptions{})
	if err == nil {
		last = renewTime(lease, last)
		// The Lease's duration is the grace period: its agent renews at
		// a quarter of it.
		if grace := int32(c.cfg.MonitorGracePeriod / time.Second); grace > 0 && (lease.Spec.LeaseDurationSeconds == nil || *lease.Spec.LeaseDurationSeconds != grace) {
			lease.Spec.LeaseDurationSeconds = &grace
			if _, err := c.cfg.Kube.CoordinationV1().Leases(lease.Namespace).Update(ctx, lease, metav1.UpdateOptions{}); err != nil && !isNotFound(err) {
				c.cfg.Log.Debug("fleet: set the heartbeat Lease's duration", "cluster", cl.Name, "err", err)
			}
		}
	} else if !isNotFound(err) {
		return err
	}
	ready := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReady)
	if now.Sub(last) > c.cfg.MonitorGracePeriod && (ready == nil || ready.Status != metav1.ConditionUnknown) {
		cond := metav1.Condition{
			Type: v1alpha1.ClusterReady, Status: metav1.ConditionUnknown, Reason: "ClusterStatusUnknown",
			Message: fmt.Sprintf("the cluster's agent stopped posting heartbeats (last at %s)", last.UTC().Format(time.RFC3339)),
		}
		setCondition(&cl.Status.Conditions, cond, cl.Generation)
		m, err := toMap(&cl.Status)
		if err != nil {
			return err
		}
		u.Object["status"] = m
		updated, err := api.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		if err != nil {
			return err
		}
		c.recorder.Eventf(u, corev1.EventTypeWarning, "ClusterNotReady", "%s", cond.Message)
		u = updated
		ready = &cond
	}
	// Taints follow readiness.
	want := map[string]bool{}
	switch {
	case ready == nil || ready.Status == metav1.ConditionTrue:
	case ready.Status == metav1.ConditionFalse:
		want[v1alpha1.TaintNotReady] = true
	default:
		want[v1alpha1.TaintUnreachable] = true
	}
	var taints []corev1.Taint
	for _, t := range cl.Spec.Taints {
		if (t.Key == v1alpha1.TaintNotReady || t.Key == v1alpha1.TaintUnreachable) && t.Effect == corev1.TaintEffectNoExecute {
			if !want[t.Key] {
				continue
			}
			delete(want, t.Key)
		}
		taints = append(taints, t)
	}
	for k := range want {
		taints = append(taints, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: now}})
	}
	if equality.Semantic.DeepEqual(taints, cl.Spec.Taints) || len(taints) == 0 && len(cl.Spec.Taints) == 0 {
		return nil
	}
	var list []any
	for _, t := range taints {
		m, err := toMap(&t)
		if err != nil {
			return err
		}
		list = append(list, m)
	}
	if len(list) == 0 {
		unstructured.RemoveNestedField(u.Object, "spec", "taints")
	} else if err := unstructured.SetNestedSlice(u.Object, list, "spec", "taints"); err != nil {
		return err
	}
	_, err = api.Update(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	return err
}

func renewTime(l *coordinationv1.Lease, def time.Time) time.Time {
	if l.Spec.RenewTime != nil {
		return l.Spec.RenewTime.Time
	}
	return def
}

// removeCluster cleans up after a deleted Cluster: its Works (whose agent
// may be gone: their finalizers are dropped; the downstream keeps its
// copies), its execution namespace with the agent's account, and its access
// rules; then lets the Cluster go.
func (c *Controller) removeCluster(ctx context.Context, u *unstructured.Unstructured) error {
	ns := fleet.ExecutionNamespace(u.GetName())
	works := c.cfg.Dynamic.Resource(v1alpha1.Works).Namespace(ns)
	for _, o := range c.store(v1alpha1.Works).List() {
		w := o.(*unstructured.Unstructured)
		if w.GetNamespace() != ns {
			continue
		}
		if len(w.GetFinalizers()) > 0 {
			w = w.DeepCopy()
			w.SetFinalizers(nil)
			if _, err := works.Update(ctx, w, metav1.UpdateOptions{FieldManager: fleet.FieldManager}); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	if err := RevokeAccess(ctx, c.cfg.Kube, u.GetName()); err != nil {
		return err
	}
	if err := c.cfg.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
		return err
	}
	u.SetFinalizers(slices.DeleteFunc(u.GetFinalizers(), func(f string) bool { return f == fleet.FinalizerCluster }))
	_, err := c.cfg.Dynamic.Resource(v1alpha1.Clusters).Update(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	if err != nil && !isNotFound(err) {
		return err
	}
	c.cfg.Log.Info("fleet: cluster removed", "cluster", u.GetName())
	return nil
}
