package aggregate

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// Health classifies one copy, given its metadata.generation and .status:
// v1alpha1.Healthy, Unhealthy or UnknownHealth, by the rules of the package
// comment.
func Health(gvk schema.GroupVersionKind, generation int64, status map[string]any) string {
	var healthy func() bool
	observes := true
	switch {
	case gvk.Group == "apps" && gvk.Kind == "Deployment":
		healthy = func() bool {
			return equal(status, "updatedReplicas", "replicas", "availableReplicas")
		}
	case gvk.Group == "apps" && gvk.Kind == "StatefulSet":
		healthy = func() bool {
			return equal(status, "updatedReplicas", "replicas", "readyReplicas")
		}
	case gvk.Group == "apps" && gvk.Kind == "ReplicaSet":
		healthy = func() bool { return equal(status, "availableReplicas", "replicas") }
	case gvk.Group == "apps" && gvk.Kind == "DaemonSet":
		healthy = func() bool { return equal(status, "numberAvailable", "desiredNumberScheduled") }
	case gvk.Group == "batch" && gvk.Kind == "Job":
		observes = false
		healthy = func() bool {
			c := condition(status, "Failed")
			return c == nil || c["status"] != "True"
		}
	default:
		return v1alpha1.Healthy
	}
	if status == nil {
		return v1alpha1.UnknownHealth
	}
	if observes {
		if n, _ := integer(status, "observedGeneration"); n < generation {
			return v1alpha1.UnknownHealth
		}
	}
	if healthy() {
		return v1alpha1.Healthy
	}
	return v1alpha1.Unhealthy
}

// equal reports whether the status's counters are all equal, a missing
// one counting 0.
func equal(status map[string]any, keys ...string) bool {
	first, _ := integer(status, keys[0])
	for _, k := range keys[1:] {
		if n, _ := integer(status, k); n != first {
			return false
		}
	}
	return true
}
