package placement

import (
	"math"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestAvailableReplicas(t *testing.T) {
	cpuMem := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("500m"),
		corev1.ResourceMemory: resource.MustParse("1Gi"),
	}
	tests := []struct {
		name string
		c    *clusterBuilder
		req  corev1.ResourceList
		want int64
	}{
		{"no summary", makeCluster("a"), cpu("1"), 0},
		{"no request, no pods", makeCluster("a").cpus("4"), nil, math.MaxInt32},
		{"no request, pods", makeCluster("a").allocatable("pods", "110").allocated("pods", "100").allocating("pods", "3"), nil, 7},
		{"pods cap the request", makeCluster("a").cpus("100").allocatable("pods", "10"), cpu("1"), 10},
		{"pods exhausted", makeCluster("a").allocatable("pods", "10").allocated("pods", "12"), nil, 0},
		{"cpu", makeCluster("a").cpus("10").allocated("cpu", "3").allocating("cpu", "2"), cpu("2"), 2},
		{"fractional cpu is exact", makeCluster("a").cpus("300m"), cpu("100m"), 3},
		{"overcommitted", makeCluster("a").cpus("1").allocated("cpu", "2"), cpu("1"), 0},
		{"smallest over resources", makeCluster("a").cpus("8").allocatable("memory", "2Gi"), cpuMem, 2},
		{"resource not offered", makeCluster("a").cpus("8"), cpuMem, 0},
		{"zero request ignored", makeCluster("a").cpus("8"), corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), "nvidia.com/gpu": resource.MustParse("0")}, 8},
		{"capped at MaxInt32", makeCluster("a").cpus("10000000"), cpu("1m"), math.MaxInt32},
		{"huge quantities", makeCluster("a").allocatable("memory", "5Ei"), corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Ei")}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c.obj()
			if got := availableReplicas(&c, tt.req); got != tt.want {
				t.Errorf("availableReplicas = %d, want %d", got, tt.want)
			}
		})
	}
}
