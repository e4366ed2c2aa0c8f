package placement

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// availableReplicas is how many more replicas requesting req the
// cluster's free capacity holds (see the package comment), at most
// math.MaxInt32.
func availableReplicas(c *v1alpha1.Cluster, req corev1.ResourceList) int64 {
	rs := c.Status.ResourceSummary
	if rs == nil {
		return 0
	}
	n := int64(math.MaxInt32)
	if pods, ok := rs.Allocatable[corev1.ResourcePods]; ok {
		allocated, allocating := rs.Allocated[corev1.ResourcePods], rs.Allocating[corev1.ResourcePods]
		free := pods.Value() - allocated.Value() - allocating.Value()
		n = min(n, max(free, 0))
	}
	for name, r := range req {
		if r.Sign() <= 0 {
			continue
		}
		alloc, ok := rs.Allocatable[name]
		if !ok {
			return 0
		}
		free := alloc.DeepCopy()
		free.Sub(rs.Allocated[name])
		free.Sub(rs.Allocating[name])
		n = min(n, fits(free, r))
	}
	return n
}

// fits is floor(free / req) for a positive req, 0 when free is not
// positive. It divides milli-units when free is small enough for them not
// to overflow (so that 0.3 CPU over 0.1 is exactly 3), whole units
// otherwise.
func fits(free, req resource.Quantity) int64 {
	if free.Sign() <= 0 {
		return 0
	}
	if free.Value() < math.MaxInt64/1000 {
		return free.MilliValue() / req.MilliValue()
	}
	return free.Value() / req.Value()
}
