package aggregate

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		gvk        schema.GroupVersionKind
		generation int64
		status     string
		want       string
	}{
		{"deployment without status", deploymentKind, 1, "", v1alpha1.UnknownHealth},
		{"deployment not observed", deploymentKind, 3, `{"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}`, v1alpha1.UnknownHealth},
		{"deployment available", deploymentKind, 3, `{"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`, v1alpha1.Healthy},
		{"deployment scaled to zero", deploymentKind, 3, `{"observedGeneration": 3}`, v1alpha1.Healthy},
		{"deployment rolling", deploymentKind, 3, `{"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}`, v1alpha1.Unhealthy},
		{"deployment unavailable", deploymentKind, 3, `{"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}`, v1alpha1.Unhealthy},
		{"statefulset ready", statefulSetKind, 1, `{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}`, v1alpha1.Healthy},
		{"statefulset not ready", statefulSetKind, 1, `{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1}`, v1alpha1.Unhealthy},
		{"statefulset not observed", statefulSetKind, 2, `{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}`, v1alpha1.UnknownHealth},
		{"replicaset available", replicaSetKind, 1, `{"observedGeneration": 1, "replicas": 2, "availableReplicas": 2}`, v1alpha1.Healthy},
		{"replicaset short", replicaSetKind, 1, `{"observedGeneration": 1, "replicas": 2, "availableReplicas": 1}`, v1alpha1.Unhealthy},
		{"daemonset available", daemonSetKind, 1, `{"observedGeneration": 1, "desiredNumberScheduled": 3, "numberAvailable": 3}`, v1alpha1.Healthy},
		{"daemonset short", daemonSetKind, 1, `{"observedGeneration": 1, "desiredNumberScheduled": 3, "numberAvailable": 2}`, v1alpha1.Unhealthy},
		{"job without status", jobKind, 1, "", v1alpha1.UnknownHealth},
		{"job running", jobKind, 1, `{"active": 1}`, v1alpha1.Healthy},
		{"job failed", jobKind, 1, `{"conditions": [{"type": "Failed", "status": "True"}]}`, v1alpha1.Unhealthy},
		{"job failure resolved", jobKind, 1, `{"conditions": [{"type": "Failed", "status": "False"}]}`, v1alpha1.Healthy},
		{"service has no rule", serviceKind, 1, `{"loadBalancer": {}}`, v1alpha1.Healthy},
		{"configmap without status", configMapKind, 1, "", v1alpha1.Healthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Health(tt.gvk, tt.generation, object(t, tt.status)); got != tt.want {
				t.Errorf("Health = %s, want %s", got, tt.want)
			}
		})
	}
	// float64 numbers, as a plain JSON decode gives them.
	if got := Health(deploymentKind, 2, floats(t, `{"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}`)); got != v1alpha1.Healthy {
		t.Errorf("Health of float64 status = %s, want Healthy", got)
	}
}
