package placement

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// MatchesAffinity reports whether cluster c satisfies affinity a; a nil
// affinity matches every cluster. Every given criterion must hold: the
// name is not excluded, is listed in clusterNames when that is non-empty,
// the labels match labelSelector (an invalid selector matches nothing) and
// the fields match fieldSelector.
func MatchesAffinity(a *v1alpha1.ClusterAffinity, c *v1alpha1.Cluster) bool {
	if a == nil {
		return true
	}
	if slices.Contains(a.ExcludeClusters, c.Name) {
		return false
	}
	if len(a.ClusterNames) > 0 && !slices.Contains(a.ClusterNames, c.Name) {
		return false
	}
	if a.LabelSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(a.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(c.Labels)) {
			return false
		}
	}
	if a.FieldSelector != nil {
		for _, r := range a.FieldSelector.MatchExpressions {
			if !matchesField(r, c) {
				return false
			}
		}
	}
	return true
}

// matchesField evaluates one fieldSelector requirement against the
// cluster's spec.provider, spec.region or spec.zone, with label selector
// semantics: an empty field is absent, so it is In no list and NotIn every
// list. Other keys and operators match nothing.
func matchesField(r corev1.NodeSelectorRequirement, c *v1alpha1.Cluster) bool {
	var v string
	switch r.Key {
	case "provider":
		v = c.Spec.Provider
	case "region":
		v = c.Spec.Region
	case "zone":
		v = c.Spec.Zone
	default:
		return false
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return v != "" && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return v == "" || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return v != ""
	case corev1.NodeSelectorOpDoesNotExist:
		return v == ""
	default:
		return false
	}
}
