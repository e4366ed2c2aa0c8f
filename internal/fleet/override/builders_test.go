package override

import (
	"encoding/json"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// parse turns a JSON literal into an object, numbers as int64 as the
// API machinery decodes them.
func parse(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := utiljson.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test object %s: %v", s, err)
	}
	return &unstructured.Unstructured{Object: m}
}

// show renders an object for failure messages.
func show(o *unstructured.Unstructured) string {
	b, _ := json.Marshal(o.Object)
	return string(b)
}

// deployment is apps/v1 Deployment default/web with containers app (image
// nginx:1.25, command [serve], args [-v]) and sidecar, and init container
// setup.
const deployment = `{
 "apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
 "spec": {"replicas": 3, "template": {"spec": {
  "initContainers": [{"name": "setup", "image": "busybox"}],
  "containers": [
   {"name": "app", "image": "nginx:1.25", "command": ["serve"], "args": ["-v"]},
   {"name": "sidecar", "image": "registry.example.com:5000/team/proxy:v2"}
  ]}}}}`

func cluster(name string, labels map[string]string) *v1alpha1.Cluster {
	return &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// rule is a rule for every cluster.
func rule(o v1alpha1.Overriders) v1alpha1.RuleWithCluster {
	return v1alpha1.RuleWithCluster{Overriders: o}
}

func plaintext(op v1alpha1.OverriderOperator, path, value string) v1alpha1.PlaintextOverrider {
	p := v1alpha1.PlaintextOverrider{Operator: op, Path: path}
	if value != "" {
		p.Value = apiextensionsv1.JSON{Raw: []byte(value)}
	}
	return p
}

// argsPolicy appends its own name to container app's args.
func argsPolicy(ns, name string) Policy {
	return Policy{Namespace: ns, Name: name, Spec: v1alpha1.OverrideSpec{
		OverrideRules: []v1alpha1.RuleWithCluster{rule(v1alpha1.Overriders{
			ArgsOverrider: []v1alpha1.CommandArgsOverrider{{ContainerName: "app", Operator: v1alpha1.OverriderOpAdd, Value: []string{name}}},
		})},
	}}
}
