package placement

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// Builders for test objects: makeCluster("a").region("eu").free("cpu", "4").obj().

// now is the tests' clock.
var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type clusterBuilder struct{ c v1alpha1.Cluster }

func makeCluster(name string) *clusterBuilder {
	return &clusterBuilder{v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}}
}

func (b *clusterBuilder) label(k, v string) *clusterBuilder { b.c.Labels[k] = v; return b }
func (b *clusterBuilder) provider(p string) *clusterBuilder { b.c.Spec.Provider = p; return b }
func (b *clusterBuilder) region(r string) *clusterBuilder   { b.c.Spec.Region = r; return b }
func (b *clusterBuilder) zone(z string) *clusterBuilder     { b.c.Spec.Zone = z; return b }

// taint adds a taint added ago before now; ago < 0 leaves timeAdded nil.
func (b *clusterBuilder) taint(key string, effect corev1.TaintEffect, ago time.Duration) *clusterBuilder {
	t := corev1.Taint{Key: key, Effect: effect}
	if ago >= 0 {
		t.TimeAdded = &metav1.Time{Time: now.Add(-ago)}
	}
	b.c.Spec.Taints = append(b.c.Spec.Taints, t)
	return b
}

func (b *clusterBuilder) summary() *v1alpha1.ResourceSummary {
	if b.c.Status.ResourceSummary == nil {
		b.c.Status.ResourceSummary = &v1alpha1.ResourceSummary{
			Allocatable: corev1.ResourceList{},
			Allocated:   corev1.ResourceList{},
			Allocating:  corev1.ResourceList{},
		}
	}
	return b.c.Status.ResourceSummary
}

// allocatable, allocated and allocating set one resource of the summary.
func (b *clusterBuilder) allocatable(name, q string) *clusterBuilder {
	b.summary().Allocatable[corev1.ResourceName(name)] = resource.MustParse(q)
	return b
}
func (b *clusterBuilder) allocated(name, q string) *clusterBuilder {
	b.summary().Allocated[corev1.ResourceName(name)] = resource.MustParse(q)
	return b
}
func (b *clusterBuilder) allocating(name, q string) *clusterBuilder {
	b.summary().Allocating[corev1.ResourceName(name)] = resource.MustParse(q)
	return b
}

// cpus makes the cluster hold n replicas of one CPU each.
func (b *clusterBuilder) cpus(n string) *clusterBuilder { return b.allocatable("cpu", n) }

func (b *clusterBuilder) obj() v1alpha1.Cluster { return *b.c.DeepCopy() }

// clusters builds several clusters.
func clusters(bs ...*clusterBuilder) []v1alpha1.Cluster {
	out := make([]v1alpha1.Cluster, len(bs))
	for i, b := range bs {
		out[i] = b.obj()
	}
	return out
}

// targets builds a result from name, replicas pairs.
func targets(kv ...any) []v1alpha1.TargetCluster {
	var out []v1alpha1.TargetCluster
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, v1alpha1.TargetCluster{Name: kv[i].(string), Replicas: int32(kv[i+1].(int))})
	}
	return out
}

func names(ns ...string) *v1alpha1.ClusterAffinity {
	return &v1alpha1.ClusterAffinity{ClusterNames: ns}
}

func tolerate(key string, effect corev1.TaintEffect, seconds ...int64) corev1.Toleration {
	t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect}
	if len(seconds) > 0 {
		t.TolerationSeconds = &seconds[0]
	}
	return t
}

func divided(pref v1alpha1.ReplicaDivisionPreference, w *v1alpha1.ClusterPreferences) *v1alpha1.ReplicaSchedulingStrategy {
	return &v1alpha1.ReplicaSchedulingStrategy{ReplicaSchedulingType: v1alpha1.Divided, ReplicaDivisionPreference: pref, WeightPreference: w}
}

func static(kv ...any) *v1alpha1.ClusterPreferences {
	p := &v1alpha1.ClusterPreferences{}
	for i := 0; i+1 < len(kv); i += 2 {
		p.StaticWeightList = append(p.StaticWeightList, v1alpha1.StaticClusterWeight{
			TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{kv[i].(string)}},
			Weight:        int64(kv[i+1].(int)),
		})
	}
	return p
}

func cpu(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
}
