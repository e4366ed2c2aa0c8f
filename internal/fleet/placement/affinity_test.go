package placement

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

func fields(key string, op corev1.NodeSelectorOperator, values ...string) *v1alpha1.ClusterAffinity {
	return &v1alpha1.ClusterAffinity{FieldSelector: &v1alpha1.FieldSelector{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}},
	}}
}

func TestMatchesAffinity(t *testing.T) {
	eu := makeCluster("eu-1").label("env", "prod").provider("aws").region("eu").obj()
	bare := makeCluster("bare").obj()
	tests := []struct {
		name    string
		a       *v1alpha1.ClusterAffinity
		c       v1alpha1.Cluster
		matches bool
	}{
		{"nil matches all", nil, eu, true},
		{"empty matches all", &v1alpha1.ClusterAffinity{}, eu, true},
		{"listed name", names("x", "eu-1"), eu, true},
		{"unlisted name", names("x"), eu, false},
		{"excluded", &v1alpha1.ClusterAffinity{ExcludeClusters: []string{"eu-1"}}, eu, false},
		{"exclude beats names", &v1alpha1.ClusterAffinity{ClusterNames: []string{"eu-1"}, ExcludeClusters: []string{"eu-1"}}, eu, false},
		{"labels match", &v1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, eu, true},
		{"labels differ", &v1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}, eu, false},
		{"invalid selector matches nothing", &v1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}},
		}}, eu, false},
		{"region In", fields("region", corev1.NodeSelectorOpIn, "us", "eu"), eu, true},
		{"region In, other", fields("region", corev1.NodeSelectorOpIn, "us"), eu, false},
		{"region In, absent", fields("region", corev1.NodeSelectorOpIn, ""), bare, false},
		{"provider NotIn", fields("provider", corev1.NodeSelectorOpNotIn, "gcp"), eu, true},
		{"provider NotIn, listed", fields("provider", corev1.NodeSelectorOpNotIn, "aws"), eu, false},
		{"NotIn, absent", fields("provider", corev1.NodeSelectorOpNotIn, "aws"), bare, true},
		{"zone Exists, absent", fields("zone", corev1.NodeSelectorOpExists), eu, false},
		{"region Exists", fields("region", corev1.NodeSelectorOpExists), eu, true},
		{"zone DoesNotExist", fields("zone", corev1.NodeSelectorOpDoesNotExist), eu, true},
		{"region DoesNotExist, present", fields("region", corev1.NodeSelectorOpDoesNotExist), eu, false},
		{"unknown key", fields("name", corev1.NodeSelectorOpExists), eu, false},
		{"unknown operator", fields("region", corev1.NodeSelectorOpGt, "1"), eu, false},
		{"every criterion must hold", &v1alpha1.ClusterAffinity{
			ClusterNames:  []string{"eu-1"},
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			FieldSelector: fields("region", corev1.NodeSelectorOpIn, "us").FieldSelector,
		}, eu, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchesAffinity(tt.a, &tt.c); got != tt.matches {
				t.Errorf("MatchesAffinity = %v, want %v", got, tt.matches)
			}
		})
	}
}
