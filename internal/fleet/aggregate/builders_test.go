package aggregate

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

var (
	deploymentKind  = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	statefulSetKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
	replicaSetKind  = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	daemonSetKind   = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	jobKind         = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
	serviceKind     = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	ingressKind     = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}
	configMapKind   = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
)

// object parses a JSON literal as the API machinery does (integers as
// int64); "" is nil.
func object(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	var m map[string]any
	if err := utiljson.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test status %s: %v", s, err)
	}
	return m
}

// floats parses a JSON literal with every number a float64, as a plain
// encoding/json decode gives them.
func floats(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test status %s: %v", s, err)
	}
	return m
}

// copyOf is cluster's copy at generation gen with status s (JSON).
func copyOf(t *testing.T, cluster string, gen int64, s string) Copy {
	return Copy{Cluster: cluster, Generation: gen, Status: object(t, s)}
}

func show(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
