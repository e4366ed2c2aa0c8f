package upstream

import (
	"cmp"
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// depKinds are the kinds a workload's pod template refers to that follow
// it to its clusters.
var depKinds = []struct {
	kind string
	gvr  schema.GroupVersionResource
}{
	{"ConfigMap", corev1.SchemeGroupVersion.WithResource("configmaps")},
	{"Secret", corev1.SchemeGroupVersion.WithResource("secrets")},
	{"ServiceAccount", corev1.SchemeGroupVersion.WithResource("serviceaccounts")},
	{"PersistentVolumeClaim", corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims")},
}

// podSpecPath is where a kind keeps its pod spec.
func podSpecPath(kind string) []string {
	switch kind {
	case "Pod":
		return []string{"spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	return []string{"spec", "template", "spec"}
}

// dependencies lists the ConfigMaps, Secrets, ServiceAccount and
// PersistentVolumeClaims a workload's pod template names, as kind/name
// pairs, sorted and unique.
func dependencies(u *unstructured.Unstructured) [][2]string {
	m, found, err := unstructured.NestedMap(u.Object, podSpecPath(u.GetKind())...)
	if err != nil || !found {
		return nil
	}
	var spec corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec); err != nil {
		return nil
	}
	var out [][2]string
	add := func(kind, name string) {
		if name != "" && !slices.Contains(out, [2]string{kind, name}) {
			out = append(out, [2]string{kind, name})
		}
	}
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" {
		add("ServiceAccount", sa)
	}
	for _, s := range spec.ImagePullSecrets {
		add("Secret", s.Name)
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			add("ConfigMap", v.ConfigMap.Name)
		case v.Secret != nil:
			add("Secret", v.Secret.SecretName)
		case v.PersistentVolumeClaim != nil:
			add("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add("ConfigMap", s.ConfigMap.Name)
				}
				if s.Secret != nil {
					add("Secret", s.Secret.Name)
				}
			}
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add("ConfigMap", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				add("Secret", e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add("ConfigMap", r.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add("Secret", r.Name)
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int {
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		return cmp.Compare(a[1], b[1])
	})
	return out
}

// watchDeps starts the informers of the dependency kinds (once): a change
// to a ConfigMap a workload uses brings the workload back.
func (c *Controller) watchDeps() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.depsWatched {
		return
	}
	c.depsWatched = true
	for _, d := range depKinds {
		inf := c.tmplInf.ForResource(d.gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, obj any) { c.enqueueNamespace(obj.(*unstructured.Unstructured).GetNamespace()) },
			AddFunc:    func(obj any) { c.enqueueNamespace(obj.(*unstructured.Unstructured).GetNamespace()) },
		})
		c.depInformers = append(c.depInformers, inf)
	}
	if c.ctx != nil {
		c.tmplInf.Start(c.ctx.Done())
	}
}

// enqueueNamespace queues the bound resources of a namespace.
func (c *Controller) enqueueNamespace(ns string) {
	for _, obj := range c.store(v1alpha1.ResourceBindings).List() {
		b := obj.(*unstructured.Unstructured)
		if b.GetNamespace() == ns {
			if k, ok := c.bindingKey(b); ok {
				c.queue.Add(k)
			}
		}
	}
}

// dependencyManifests returns the workload's dependencies that exist, made
// fit for another cluster, to ship in the same Work.
func (c *Controller) dependencyManifests(ctx context.Context, u *unstructured.Unstructured) []*unstructured.Unstructured {
	deps := dependencies(u)
	if len(deps) == 0 {
		return nil
	}
	c.watchDeps()
	var out []*unstructured.Unstructured
	for _, d := range deps {
		for _, k := range depKinds {
			if k.kind != d[0] {
				continue
			}
			inf := c.tmplInf.ForResource(k.gvr).Informer()
			if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
				return nil
			}
			o, ok, _ := inf.GetStore().GetByKey(u.GetNamespace() + "/" + d[1])
			if !ok {
				continue // not there (yet): its creation brings the workload back
			}
			obj := o.(*unstructured.Unstructured).DeepCopy()
			if k.kind == "Secret" && obj.Object["type"] == string(corev1.SecretTypeServiceAccountToken) {
				continue // per cluster
			}
			if k.kind == "ServiceAccount" {
				unstructured.RemoveNestedField(obj.Object, "secrets")
			}
			out = append(out, obj)
		}
	}
	return out
}
