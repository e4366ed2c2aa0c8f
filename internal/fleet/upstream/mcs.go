package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// mcsKind is the Kind of the queue's keys of multi-cluster services
// (exportKey); their Namespace and Name are the exported Service's.
const mcsKind = "ServiceExport"

// exportSelector picks the EndpointSlices agents publish for their exports.
var exportSelector = discoveryv1.LabelManagedBy + "=" + fleet.ManagedByMCS + "," + fleet.LabelServiceNamespace

// watchExports starts the informer on the clusters' exports; a change
// brings its service's key to the queue.
func (c *Controller) watchExports(ctx context.Context) (cache.SharedIndexInformer, error) {
	f := informers.NewSharedInformerFactoryWithOptions(c.cfg.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = exportSelector }))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	enqueue := func(obj any) {
		obj = fleet.Unwrap(obj)
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			c.queue.AddAfter(exportKey(s.Labels[fleet.LabelServiceNamespace], s.Labels[mcsv1beta1.LabelServiceName]), statusCoalesce)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, ctx.Err()
	}
	return inf, nil
}

func exportKey(ns, name string) key { return key{Kind: mcsKind, Namespace: ns, Name: name} }

// enqueueAllExports brings every multi-cluster service back (a cluster
// came, went or changed readiness), and those imported but no longer
// exported, whose Works are to go.
func (c *Controller) enqueueAllExports() {
	if c.exports == nil {
		return
	}
	for _, o := range c.exports.GetStore().List() {
		s := o.(*discoveryv1.EndpointSlice)
		c.queue.Add(exportKey(s.Labels[fleet.LabelServiceNamespace], s.Labels[mcsv1beta1.LabelServiceName]))
	}
	for _, o := range c.store(v1alpha1.Works).List() {
		if ns, name, ok := fleet.ParseImportWorkName(o.(*unstructured.Unstructured).GetName()); ok {
			c.queue.Add(exportKey(ns, name))
		}
	}
}

// syncImport places the import of one multi-cluster service on every
// cluster: a Work with the ServiceImport, the derived Service and one
// EndpointSlice per exporting cluster. With no export left, its Works go.
func (c *Controller) syncImport(ctx context.Context, k key) error {
	var exports []*discoveryv1.EndpointSlice
	for _, o := range c.exports.GetStore().List() {
		s := o.(*discoveryv1.EndpointSlice)
		if s.Labels[fleet.LabelServiceNamespace] == k.Namespace && s.Labels[mcsv1beta1.LabelServiceName] == k.Name &&
			s.Namespace == fleet.ExecutionNamespace(s.Labels[mcsv1beta1.LabelSourceCluster]) {
			exports = append(exports, s)
		}
	}
	ready := map[string]bool{}
	var members []string
	for _, cl := range c.clusters() {
		members = append(members, cl.Name)
		ready[cl.Name] = meta.IsStatusConditionTrue(cl.Status.Conditions, v1alpha1.ClusterReady)
	}
	want := map[string]string{} // execution namespace → member
	if len(exports) > 0 {
		for _, m := range members {
			want[fleet.ExecutionNamespace(m)] = m
		}
	}
	// The import's Works where it is not wanted (any more) go: one look
	// per registered cluster, not a pass over every Work.
	name := fleet.ImportWorkName(k.Namespace, k.Name)
	for _, o := range c.store(v1alpha1.Clusters).List() {
		ns := fleet.ExecutionNamespace(o.(*unstructured.Unstructured).GetName())
		if _, ok := want[ns]; ok {
			continue
		}
		w, exists, _ := c.store(v1alpha1.Works).GetByKey(cache.NewObjectName(ns, name).String())
		if !exists || w.(*unstructured.Unstructured).GetDeletionTimestamp() != nil {
			continue
		}
		if err := c.cfg.Dynamic.Resource(v1alpha1.Works).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
			return err
		}
	}
	for ns, member := range want {
		objs, err := importManifests(k.Namespace, k.Name, exports, ready, member)
		if err != nil {
			return err
		}
		manifests := make([]any, 0, len(objs))
		for _, o := range objs {
			manifests = append(manifests, o.Object)
		}
		if err := c.applyImportWork(ctx, ns, name, map[string]any{"workload": map[string]any{"manifests": manifests}}); err != nil {
			return err
		}
	}
	return nil
}

// applyImportWork creates or updates one import Work.
func (c *Controller) applyImportWork(ctx context.Context, ns, name string, spec map[string]any) error {
	api := c.cfg.Dynamic.Resource(v1alpha1.Works).Namespace(ns)
	spec = runtime.DeepCopyJSON(spec)
	if o, ok, _ := c.store(v1alpha1.Works).GetByKey(cache.NewObjectName(ns, name).String()); ok {
		old := o.(*unstructured.Unstructured)
		if old.GetDeletionTimestamp() != nil {
			return fmt.Errorf("work %s/%s is being deleted", ns, name)
		}
		if oldSpec, _, _ := unstructured.NestedMap(old.Object, "spec"); equality.Semantic.DeepEqual(oldSpec, spec) {
			return nil
		}
		w := old.DeepCopy()
		w.Object["spec"] = spec
		_, err := api.Update(ctx, w, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
		return err
	}
	w := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	w.SetAPIVersion(v1alpha1.GroupVersion.String())
	w.SetKind("Work")
	w.SetNamespace(ns)
	w.SetName(name)
	w.SetFinalizers([]string{fleet.FinalizerAgent})
	_, err := api.Create(ctx, w, metav1.CreateOptions{FieldManager: fleet.FieldManager})
	if isNotFound(err) {
		return nil // the cluster is being removed
	}
	return err
}

// importManifests renders what imports NS/NAME into a cluster from the
// exports' slices: the ServiceImport, the derived Service without selector
// (labelled with the multi-cluster service's name, which the cluster DNS
// answers NAME.NS.svc.clusterset.local from), and one EndpointSlice per
// exporting cluster but member itself; ready says which clusters are Ready
// (the endpoints of the others are left out). The member's own endpoints
// are its agent's to add, from its local EndpointSlices: a pod cannot
// reach its own node's node ports through a cluster IP (the connection is
// translated once). The ports are the union of the exports' by
// name; where two exports define one name differently, the oldest export
// wins, as the MCS API's conflict resolution says.
func importManifests(ns, name string, exports []*discoveryv1.EndpointSlice, ready map[string]bool, member string) ([]*unstructured.Unstructured, error) {
	exports = slices.Clone(exports)
	slices.SortFunc(exports, func(a, b *discoveryv1.EndpointSlice) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Labels[mcsv1beta1.LabelSourceCluster], b.Labels[mcsv1beta1.LabelSourceCluster])
	})
	var ports []mcsv1beta1.ServicePort
	affinity := corev1.ServiceAffinityNone
	for i, s := range exports {
		var ps []mcsv1beta1.ServicePort
		if err := json.Unmarshal([]byte(s.Annotations[fleet.AnnotationServicePorts]), &ps); err != nil {
			return nil, fmt.Errorf("export %s/%s: annotation %s: %w", s.Namespace, s.Name, fleet.AnnotationServicePorts, err)
		}
		for _, p := range ps {
			if !slices.ContainsFunc(ports, func(q mcsv1beta1.ServicePort) bool { return q.Name == p.Name }) {
				ports = append(ports, p)
			}
		}
		if a := s.Annotations[fleet.AnnotationSessionAffinity]; i == 0 && a != "" {
			affinity = corev1.ServiceAffinity(a)
		}
	}
	derived := fleet.DerivedServiceName(name)
	imp := map[string]any{
		"apiVersion": fleet.ServiceImports.GroupVersion().String(),
		"kind":       mcsv1beta1.ServiceImportKindName,
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"type": string(mcsv1beta1.ClusterSetIP), "ports": ports, "sessionAffinity": string(affinity)},
	}
	svcPorts := make([]corev1.ServicePort, 0, len(ports))
	for _, p := range ports {
		svcPorts = append(svcPorts, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port})
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: derived, Namespace: ns, Labels: map[string]string{mcsv1beta1.LabelServiceName: name}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: svcPorts, SessionAffinity: affinity},
	}
	out := []any{imp, svc}
	for _, s := range exports {
		cluster := s.Labels[mcsv1beta1.LabelSourceCluster]
		if cluster == member {
			continue
		}
		eps := []discoveryv1.Endpoint{}
		if ready[cluster] {
			eps = s.Endpoints
		}
		out = append(out, &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{Name: derived + "-" + cluster, Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName:  derived,
				discoveryv1.LabelManagedBy:    fleet.ManagedByMCS,
				mcsv1beta1.LabelServiceName:   name,
				mcsv1beta1.LabelSourceCluster: cluster,
			}},
			AddressType: s.AddressType,
			Endpoints:   eps,
			Ports:       s.Ports,
		})
	}
	objs := make([]*unstructured.Unstructured, 0, len(out))
	for _, o := range out {
		// Through JSON: the ports' typed fields become plain values.
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "status")
		objs = append(objs, u)
	}
	return objs, nil
}
