package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/skiffdev/skiff/internal/fleet"
)

// mcsResync is how often the exports and imports are looked at again
// without a change (a write that failed, a slice deleted on the upstream).
const mcsResync = 30 * time.Second

// mcsFieldManager writes what the agent adds to imports (spec.ips).
const mcsFieldManager = "skiff-fleet-mcs"

// services runs the cluster's side of multi-cluster services: it publishes
// each valid ServiceExport's reachable addresses on the upstream (an
// EndpointSlice in the execution namespace) and reports the export's
// conditions; and it gives each ServiceImport the upstream placed here the
// cluster IP of its derived Service. Level-based: every change, and a
// periodic resync, recomputes all of it from the caches.
func (a *agent) services(ctx context.Context, up kubernetes.Interface, localDyn dynamic.Interface) error {
	kinf := informers.NewSharedInformerFactory(a.local, 0)
	svcs := kinf.Core().V1().Services()
	nodes := kinf.Core().V1().Nodes()
	localSlices := kinf.Discovery().V1().EndpointSlices()
	dinf := dynamicinformer.NewDynamicSharedInformerFactory(localDyn, 0)
	exports := dinf.ForResource(fleet.ServiceExports)
	imports := dinf.ForResource(fleet.ServiceImports)
	changed := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: notify, UpdateFunc: func(_, o any) { notify(o) }, DeleteFunc: notify}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), nodes.Informer(), localSlices.Informer(), exports.Informer(), imports.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	kinf.Start(ctx.Done())
	dinf.Start(ctx.Done())
	defer kinf.Shutdown()
	defer dinf.Shutdown()
	kinf.WaitForCacheSync(ctx.Done())
	dinf.WaitForCacheSync(ctx.Done())
	t := time.NewTicker(mcsResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			// Let a burst of events settle into one pass.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := a.syncExports(sctx, up, localDyn, svcs.Lister().List, nodes.Lister().List, exports.Informer().GetStore().List()); err != nil {
			a.log.Warn("fleet agent: publish the cluster's service exports", "err", err)
		}
		if err := a.syncImports(sctx, localDyn, svcs.Informer().GetStore(), imports.Informer().GetStore().List()); err != nil {
			a.log.Warn("fleet agent: give the service imports their addresses", "err", err)
		}
		if err := a.syncLocalEndpoints(sctx, localSlices.Lister().List, exports.Informer().GetStore(), imports.Informer().GetStore().List()); err != nil {
			a.log.Warn("fleet agent: give the service imports this cluster's endpoints", "err", err)
		}
		cancel()
	}
}

type (
	listServices func(labels.Selector) ([]*corev1.Service, error)
	listNodes    func(labels.Selector) ([]*corev1.Node, error)
)

// syncExports publishes every valid export and withdraws the others.
func (a *agent) syncExports(ctx context.Context, up kubernetes.Interface, localDyn dynamic.Interface, services listServices, nodes listNodes, exports []any) error {
	all, err := services(labels.Everything())
	if err != nil {
		return err
	}
	byKey := map[string]*corev1.Service{}
	for _, s := range all {
		byKey[s.Namespace+"/"+s.Name] = s
	}
	ns, err := nodes(labels.Everything())
	if err != nil {
		return err
	}
	var nodeIPs []string
	for _, n := range ns {
		if !nodeReady(n) {
			continue
		}
		for _, addr := range n.Status.Addresses {
			if addr.Type == corev1.NodeInternalIP && net.ParseIP(addr.Address).To4() != nil {
				nodeIPs = append(nodeIPs, addr.Address)
				break
			}
		}
	}
	slices.Sort(nodeIPs)

	execNS := fleet.ExecutionNamespace(a.cluster)
	upSlices := up.DiscoveryV1().EndpointSlices(execNS)
	published, err := upSlices.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + fleet.ManagedByMCS})
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	exported := map[string]bool{} // NS/NAME of every export
	var errs []error
	for _, o := range exports {
		exp := o.(*unstructured.Unstructured)
		if exp.GetDeletionTimestamp() != nil {
			continue
		}
		exported[exp.GetNamespace()+"/"+exp.GetName()] = true
		slice, valid, ready := a.exportSlice(ctx, exp, byKey, nodeIPs)
		if slice != nil {
			keep[slice.Name] = true
			if err := publish(ctx, upSlices, published.Items, slice); err != nil {
				ready = metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionFalse,
					Reason: string(mcsv1beta1.ServiceExportReasonPending), Message: "publishing the export on the upstream: " + err.Error()}
				errs = append(errs, err)
			}
		}
		if err := setExportConditions(ctx, localDyn, exp, valid, ready); err != nil {
			errs = append(errs, err)
		}
	}
	// A NodePort twin goes with its export (its owner reference would see
	// to it too, once the garbage collector knows the export's kind).
	for _, svc := range all {
		if of, ok := svc.Labels[fleet.LabelExportOf]; ok && svc.Name == fleet.ExportNodePortName(of) && !exported[svc.Namespace+"/"+of] {
			if err := a.local.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	for _, s := range published.Items {
		if !keep[s.Name] {
			if err := upSlices.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// exportSlice is the EndpointSlice that publishes exp, nil when it is not
// valid (the Valid condition says why) or not reachable yet (Ready says
// so). Other clusters reach an export at its load balancer's addresses,
// or at every Ready node's InternalIP on its node ports; a ClusterIP
// Service gets a NodePort twin, owned by its ServiceExport.
func (a *agent) exportSlice(ctx context.Context, exp *unstructured.Unstructured, services map[string]*corev1.Service, nodeIPs []string) (*discoveryv1.EndpointSlice, metav1.Condition, metav1.Condition) {
	ns, name := exp.GetNamespace(), exp.GetName()
	invalid := func(reason mcsv1beta1.ServiceExportConditionReason, msg string) (*discoveryv1.EndpointSlice, metav1.Condition, metav1.Condition) {
		return nil, metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionFalse, Reason: string(reason), Message: msg},
			metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionFalse, Reason: string(mcsv1beta1.ServiceExportReasonFailed), Message: msg}
	}
	pending := func(msg string) (*discoveryv1.EndpointSlice, metav1.Condition, metav1.Condition) {
		return nil, metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionTrue, Reason: string(mcsv1beta1.ServiceExportReasonValid), Message: "the Service is exported"},
			metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionFalse, Reason: string(mcsv1beta1.ServiceExportReasonPending), Message: msg}
	}
	svc := services[ns+"/"+name]
	switch {
	case svc == nil:
		return invalid(mcsv1beta1.ServiceExportReasonNoService, fmt.Sprintf("Service %s/%s does not exist", ns, name))
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return invalid(mcsv1beta1.ServiceExportReasonInvalidServiceType, "an ExternalName Service cannot be exported")
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return invalid(mcsv1beta1.ServiceExportReasonInvalidServiceType,
			"a headless Service cannot be exported: other clusters reach an export through its cluster's node or load balancer addresses, not its pods'")
	case svc.Spec.Type == corev1.ServiceTypeClusterIP && len(svc.Spec.Selector) == 0:
		return invalid(mcsv1beta1.ServiceExportReasonInvalidServiceType,
			"a ClusterIP Service without selector cannot be exported: make it a NodePort or LoadBalancer Service")
	}
	reach := svc
	if svc.Spec.Type == corev1.ServiceTypeClusterIP {
		twin, err := a.ensureNodePortTwin(ctx, exp, svc, services[ns+"/"+fleet.ExportNodePortName(name)])
		if err != nil {
			return pending(fmt.Sprintf("creating the NodePort Service %s/%s that exposes it: %v", ns, fleet.ExportNodePortName(name), err))
		}
		reach = twin
	}
	var lbIPs []string
	for _, in := range reach.Status.LoadBalancer.Ingress {
		if net.ParseIP(in.IP).To4() != nil {
			lbIPs = append(lbIPs, in.IP)
		}
	}
	addrs := nodeIPs
	if len(lbIPs) > 0 {
		addrs = lbIPs
	}
	var ports []mcsv1beta1.ServicePort
	var reached []discoveryv1.EndpointPort
	for _, p := range svc.Spec.Ports {
		ports = append(ports, mcsv1beta1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port})
		i := slices.IndexFunc(reach.Spec.Ports, func(q corev1.ServicePort) bool { return q.Name == p.Name })
		if i < 0 {
			return pending("waiting for the node ports of " + reach.Name)
		}
		port := reach.Spec.Ports[i].NodePort
		if len(lbIPs) > 0 {
			port = reach.Spec.Ports[i].Port
		}
		if port == 0 {
			return pending("waiting for the node ports of " + reach.Name)
		}
		reached = append(reached, discoveryv1.EndpointPort{Name: new(p.Name), Protocol: new(p.Protocol), AppProtocol: p.AppProtocol, Port: new(port)})
	}
	if len(addrs) == 0 {
		return pending("no Ready node has an IPv4 InternalIP to reach it at")
	}
	portsJSON, _ := json.Marshal(ports)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: fleet.ExportSliceName(ns, name),
			Labels: map[string]string{
				discoveryv1.LabelManagedBy:    fleet.ManagedByMCS,
				fleet.LabelServiceNamespace:   ns,
				mcsv1beta1.LabelServiceName:   name,
				mcsv1beta1.LabelSourceCluster: a.cluster,
			},
			Annotations: map[string]string{
				fleet.AnnotationServicePorts:    string(portsJSON),
				fleet.AnnotationSessionAffinity: string(svc.Spec.SessionAffinity),
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       reached,
	}
	for _, ip := range addrs {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}})
	}
	return slice,
		metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionTrue, Reason: string(mcsv1beta1.ServiceExportReasonValid), Message: "the Service is exported"},
		metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionTrue, Reason: string(mcsv1beta1.ServiceExportReasonReady),
			Message: fmt.Sprintf("reachable from the clusterset at %s", strings.Join(addrs, ", "))}
}

// ensureNodePortTwin keeps the NodePort Service that exposes the exported
// ClusterIP Service svc: same selector and ports, owned by the export (so
// that it goes with it).
func (a *agent) ensureNodePortTwin(ctx context.Context, exp *unstructured.Unstructured, svc, have *corev1.Service) (*corev1.Service, error) {
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: fleet.ExportNodePortName(svc.Name), Namespace: svc.Namespace,
			Labels:          map[string]string{fleet.LabelExportOf: svc.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: exp.GetAPIVersion(), Kind: exp.GetKind(), Name: exp.GetName(), UID: exp.GetUID()}},
		},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: svc.Spec.Selector, SessionAffinity: svc.Spec.SessionAffinity},
	}
	for _, p := range svc.Spec.Ports {
		tp := p.TargetPort
		if tp == (intstr.IntOrString{}) {
			tp = intstr.FromInt32(p.Port)
		}
		q := corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port, TargetPort: tp}
		if have != nil {
			// Keep the node port once given.
			if i := slices.IndexFunc(have.Spec.Ports, func(h corev1.ServicePort) bool { return h.Name == p.Name }); i >= 0 {
				q.NodePort = have.Spec.Ports[i].NodePort
			}
		}
		want.Spec.Ports = append(want.Spec.Ports, q)
	}
	api := a.local.CoreV1().Services(svc.Namespace)
	if have == nil {
		return api.Create(ctx, want, metav1.CreateOptions{FieldManager: mcsFieldManager})
	}
	if have.Labels[fleet.LabelExportOf] != svc.Name {
		return nil, fmt.Errorf("a Service of that name exists and is not the export's")
	}
	if equality.Semantic.DeepEqual(have.Spec.Selector, want.Spec.Selector) && equality.Semantic.DeepEqual(have.Spec.Ports, want.Spec.Ports) &&
		have.Spec.SessionAffinity == want.Spec.SessionAffinity && have.Spec.Type == want.Spec.Type {
		return have, nil
	}
	upd := have.DeepCopy()
	upd.Spec.Type, upd.Spec.Selector, upd.Spec.Ports, upd.Spec.SessionAffinity = want.Spec.Type, want.Spec.Selector, want.Spec.Ports, want.Spec.SessionAffinity
	return api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: mcsFieldManager})
}

// publish creates or updates the export's slice on the upstream.
func publish(ctx context.Context, api interface {
	Create(context.Context, *discoveryv1.EndpointSlice, metav1.CreateOptions) (*discoveryv1.EndpointSlice, error)
	Update(context.Context, *discoveryv1.EndpointSlice, metav1.UpdateOptions) (*discoveryv1.EndpointSlice, error)
}, published []discoveryv1.EndpointSlice, want *discoveryv1.EndpointSlice) error {
	i := slices.IndexFunc(published, func(s discoveryv1.EndpointSlice) bool { return s.Name == want.Name })
	if i < 0 {
		_, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: fleet.FieldManager})
		return err
	}
	have := published[i]
	if equality.Semantic.DeepEqual(have.Labels, want.Labels) && equality.Semantic.DeepEqual(have.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) && equality.Semantic.DeepEqual(have.Ports, want.Ports) {
		return nil
	}
	upd := have.DeepCopy()
	upd.Labels, upd.Annotations, upd.Endpoints, upd.Ports = want.Labels, want.Annotations, want.Endpoints, want.Ports
	_, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	return err
}

// setExportConditions writes the export's Valid and Ready conditions
// when they changed.
func setExportConditions(ctx context.Context, localDyn dynamic.Interface, exp *unstructured.Unstructured, conds ...metav1.Condition) error {
	var st mcsv1beta1.ServiceExportStatus
	if m, ok := exp.Object["status"].(map[string]any); ok {
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(m, &st)
	}
	changed := false
	for _, c := range conds {
		c.ObservedGeneration = exp.GetGeneration()
		changed = meta.SetStatusCondition(&st.Conditions, c) || changed
	}
	if !changed {
		return nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	upd := exp.DeepCopy()
	upd.Object["status"] = m
	_, err = localDyn.Resource(fleet.ServiceExports).Namespace(exp.GetNamespace()).UpdateStatus(ctx, upd, metav1.UpdateOptions{FieldManager: fleet.FieldManager})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed: the next pass sees it
	}
	return err
}

// syncImports sets each ServiceImport's spec.ips to its derived Service's
// cluster IP.
func (a *agent) syncImports(ctx context.Context, localDyn dynamic.Interface, services cache.Store, imports []any) error {
	for _, o := range imports {
		imp := o.(*unstructured.Unstructured)
		obj, ok, _ := services.GetByKey(imp.GetNamespace() + "/" + fleet.DerivedServiceName(imp.GetName()))
		if !ok {
			continue
		}
		ip := obj.(*corev1.Service).Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone {
			continue
		}
		have, _, _ := unstructured.NestedStringSlice(imp.Object, "spec", "ips")
		if slices.Equal(have, []string{ip}) {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"ips": []string{ip}}})
		if _, err := localDyn.Resource(fleet.ServiceImports).Namespace(imp.GetNamespace()).Patch(ctx, imp.GetName(), types.MergePatchType, patch,
			metav1.PatchOptions{FieldManager: mcsFieldManager}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// syncLocalEndpoints gives each import of a service this cluster exports
// too the local endpoints of that service: an EndpointSlice of the derived
// Service (DERIVED-CLUSTER) with the exported Service's endpoints and
// ports, owned by the ServiceImport. (The upstream's import carries the
// other clusters' endpoints only: a pod cannot reach its own node's node
// ports through a cluster IP.) Slices of exports withdrawn go.
func (a *agent) syncLocalEndpoints(ctx context.Context, list func(labels.Selector) ([]*discoveryv1.EndpointSlice, error), exports cache.Store, imports []any) error {
	all, err := list(labels.Everything())
	if err != nil {
		return err
	}
	api := a.local.DiscoveryV1()
	want := map[string]bool{}
	var errs []error
	for _, o := range imports {
		imp := o.(*unstructured.Unstructured)
		ns, name := imp.GetNamespace(), imp.GetName()
		exp, ok, _ := exports.GetByKey(ns + "/" + name)
		if !ok || exp.(*unstructured.Unstructured).GetDeletionTimestamp() != nil || imp.GetDeletionTimestamp() != nil {
			continue
		}
		derived := fleet.DerivedServiceName(name)
		mirror := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: derived + "-" + a.cluster, Namespace: ns,
				Labels: map[string]string{
					discoveryv1.LabelServiceName:  derived,
					discoveryv1.LabelManagedBy:    fleet.ManagedByMCS,
					mcsv1beta1.LabelServiceName:   name,
					mcsv1beta1.LabelSourceCluster: a.cluster,
				},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: imp.GetAPIVersion(), Kind: imp.GetKind(), Name: name, UID: imp.GetUID()}},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{},
		}
		for _, s := range all {
			if s.Namespace != ns || s.Labels[discoveryv1.LabelServiceName] != name || s.AddressType != discoveryv1.AddressTypeIPv4 {
				continue
			}
			for _, ep := range s.Endpoints {
				mirror.Endpoints = append(mirror.Endpoints, discoveryv1.Endpoint{Addresses: ep.Addresses, Conditions: ep.Conditions, NodeName: ep.NodeName})
			}
			if mirror.Ports == nil {
				mirror.Ports = s.Ports
			}
		}
		key := ns + "/" + mirror.Name
		want[key] = true
		i := slices.IndexFunc(all, func(s *discoveryv1.EndpointSlice) bool { return s.Namespace == ns && s.Name == mirror.Name })
		switch {
		case i < 0:
			_, err = api.EndpointSlices(ns).Create(ctx, mirror, metav1.CreateOptions{FieldManager: mcsFieldManager})
		case !equality.Semantic.DeepEqual(all[i].Endpoints, mirror.Endpoints) || !equality.Semantic.DeepEqual(all[i].Ports, mirror.Ports) ||
			!equality.Semantic.DeepEqual(all[i].Labels, mirror.Labels):
			upd := all[i].DeepCopy()
			upd.Labels, upd.Endpoints, upd.Ports, upd.OwnerReferences = mirror.Labels, mirror.Endpoints, mirror.Ports, mirror.OwnerReferences
			_, err = api.EndpointSlices(ns).Update(ctx, upd, metav1.UpdateOptions{FieldManager: mcsFieldManager})
		default:
			err = nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	for _, s := range all {
		if s.Labels[discoveryv1.LabelManagedBy] == fleet.ManagedByMCS && s.Labels[mcsv1beta1.LabelSourceCluster] == a.cluster &&
			s.Labels[fleet.LabelManaged] == "" && !want[s.Namespace+"/"+s.Name] {
			if err := api.EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
