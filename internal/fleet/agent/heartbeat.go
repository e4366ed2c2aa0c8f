package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// register writes what the agent knows of its cluster into the Cluster's
// spec and labels: its identity, API endpoint and the join's labels.
func (a *agent) register(ctx context.Context, up dynamic.Interface) error {
	u, err := up.Resource(v1alpha1.Clusters).Get(ctx, a.cluster, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %s does not exist on the upstream (deleted there?)", a.cluster)
		}
		return fmt.Errorf("get cluster %s from the upstream: %w", a.cluster, err)
	}
	before := u.DeepCopy()
	ks, err := a.local.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec := map[string]any{}
	if s, ok := u.Object["spec"].(map[string]any); ok {
		spec = s
	}
	spec["id"] = string(ks.UID)
	spec["syncMode"] = string(v1alpha1.Pull)
	spec["apiEndpoint"] = a.cfg.Local.Host
	var reg struct {
		Labels                 map[string]string
		Region, Zone, Provider string
	}
	if b := a.secret.Data["registration"]; len(b) > 0 {
		if err := json.Unmarshal(b, &reg); err != nil {
			return fmt.Errorf("registration in the agent's Secret: %w", err)
		}
	}
	for k, v := range map[string]string{"region": reg.Region, "zone": reg.Zone, "provider": reg.Provider} {
		if v != "" {
			spec[k] = v
		}
	}
	u.Object["spec"] = spec
	if len(reg.Labels) > 0 {
		l := u.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, reg.Labels)
		u.SetLabels(l)
	}
	if equality.Semantic.DeepEqual(before, u) {
		return nil
	}
	_, err = up.Resource(v1alpha1.Clusters).Update(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	return err
}

// heartbeat renews the Lease and refreshes the Cluster's status every
// interval until ctx ends or the upstream refuses the agent.
func (a *agent) heartbeat(ctx context.Context, up kubernetes.Interface, upDyn dynamic.Interface) error {
	inf := informers.NewSharedInformerFactory(a.local, 0)
	nodes := inf.Core().V1().Nodes().Informer()
	pods := inf.Core().V1().Pods().Informer()
	// Keep only what capacity needs of each pod.
	if err := pods.SetTransform(func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil
		}
		slim := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion}}
		slim.Spec.NodeName = p.Spec.NodeName
		slim.Status.Phase = p.Status.Phase
		for _, c := range p.Spec.Containers {
			slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Resources: corev1.ResourceRequirements{Requests: c.Resources.Requests}})
		}
		return slim, nil
	}); err != nil {
		return err
	}
	inf.Start(ctx.Done())
	defer inf.Shutdown()
	inf.WaitForCacheSync(ctx.Done())

	ns := fleet.ExecutionNamespace(a.cluster)
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		// No request of a heartbeat may outlast a few heartbeats.
		hctx, cancel := context.WithTimeout(ctx, max(10*time.Second, 3*a.cfg.HeartbeatInterval))
		interval, err := a.renewLease(hctx, up, ns)
		if err != nil {
			// 401: the token is no longer valid (the account was deleted:
			// revoked). A 403 is not final: an upstream that has just
			// started refuses everyone until its RBAC cache is filled.
			if apierrors.IsUnauthorized(err) {
				cancel()
				return fmt.Errorf("the upstream refuses this cluster's agent (revoked?): %w", err)
			}
			a.log.Warn("fleet agent: renew the heartbeat Lease", "err", err)
		} else if interval != a.cfg.HeartbeatInterval && interval > 0 {
			a.cfg.HeartbeatInterval = interval
			t.Reset(interval)
		}
		if err := a.writeStatus(hctx, upDyn, nodes.GetStore().List(), pods.GetStore().List()); err != nil {
			a.log.Warn("fleet agent: report the cluster's status", "err", err)
		}
		if err := a.maybeRenewToken(hctx, up); err != nil {
			a.log.Warn("fleet agent: renew its token", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renewLease renews the heartbeat Lease and returns how often to renew it:
// a quarter of its duration, which the upstream sets to its grace period
// (as kubelets renew node Leases).
func (a *agent) renewLease(ctx context.Context, up kubernetes.Interface, ns string) (time.Duration, error) {
	leases := up.CoordinationV1().Leases(ns)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, fleet.HeartbeatLease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: fleet.HeartbeatLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &a.cluster, RenewTime: &now,
				LeaseDurationSeconds: new(int32(fleet.DefaultLeaseDurationSeconds))},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		l.Spec.HolderIdentity = &a.cluster
		l, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		return 0, err
	}
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		return max(time.Duration(*d)*time.Second/4, 500*time.Millisecond), nil
	}
	return a.cfg.HeartbeatInterval, nil
}

// status is the cluster's status as the agent sees it.
func (a *agent) status(ctx context.Context, nodes, pods []any, last v1alpha1.ClusterStatus) v1alpha1.ClusterStatus {
	st := v1alpha1.ClusterStatus{Conditions: last.DeepCopy().Conditions}
	ready := metav1.Condition{Type: v1alpha1.ClusterReady, Status: metav1.ConditionTrue, Reason: "ClusterReady", Message: "cluster is healthy and ready to accept workloads"}
	if v, err := a.local.Discovery().ServerVersion(); err == nil {
		st.KubernetesVersion = v.GitVersion
	}
	if body, err := a.local.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		ready = metav1.Condition{Type: v1alpha1.ClusterReady, Status: metav1.ConditionFalse, Reason: "ClusterNotReady",
			Message: fmt.Sprintf("the cluster's API server is not ready: %v %s", err, body)}
	}
	meta.SetStatusCondition(&st.Conditions, ready)

	allocatable, allocated, allocating := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
	add := func(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		sum := l[name]
		sum.Add(q)
		l[name] = sum
	}
	var summary v1alpha1.NodeSummary
	for _, o := range nodes {
		n := o.(*corev1.Node)
		summary.TotalNum++
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				summary.ReadyNum++
				for name, q := range n.Status.Allocatable {
					add(allocatable, name, q)
				}
			}
		}
	}
	one := resource.MustParse("1")
	for _, o := range pods {
		p := o.(*corev1.Pod)
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		into := allocated
		if p.Spec.NodeName == "" {
			into = allocating
		}
		add(into, corev1.ResourcePods, one)
		for _, c := range p.Spec.Containers {
			for name, q := range c.Resources.Requests {
				add(into, name, q)
			}
		}
	}
	st.NodeSummary = &summary
	st.ResourceSummary = &v1alpha1.ResourceSummary{Allocatable: allocatable, Allocated: allocated, Allocating: allocating}
	return st
}

// writeStatus refreshes the Cluster's status when it changed, or when the
// upstream marked the cluster not Ready while heartbeats did not arrive.
func (a *agent) writeStatus(ctx context.Context, up dynamic.Interface, nodes, pods []any) error {
	api := up.Resource(v1alpha1.Clusters)
	u, err := api.Get(ctx, a.cluster, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var cur v1alpha1.ClusterStatus
	if m, ok := u.Object["status"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cur); err != nil {
			return err
		}
	}
	st := a.status(ctx, nodes, pods, cur)
	if equality.Semantic.DeepEqual(st, cur) {
		return nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	u.Object["status"] = m
	_, err = api.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	return err
}

// maybeRenewToken replaces the agent's token at half its life; the Secret's
// change restarts the agent with it.
func (a *agent) maybeRenewToken(ctx context.Context, up kubernetes.Interface) error {
	exp, err := expiry(a.up.BearerToken)
	if err != nil || time.Until(exp) > tokenLifetime/2 {
		return err
	}
	token, err := renewToken(ctx, up, a.cluster)
	if err != nil {
		return err
	}
	sec := a.secret.DeepCopy()
	sec.Data[keyToken] = []byte(token)
	_, err = a.local.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, sec, metav1.UpdateOptions{})
	return err
}
