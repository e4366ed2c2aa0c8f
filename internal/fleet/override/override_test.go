package override

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

func TestSelects(t *testing.T) {
	labelled := func(kv ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{kv[0]: kv[1]}}
	}
	tests := []struct {
		name    string
		sel     v1alpha1.ResourceSelector
		selects bool
	}{
		{"kind", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment"}, true},
		{"other kind", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "StatefulSet"}, false},
		{"other version", v1alpha1.ResourceSelector{APIVersion: "apps/v1beta1", Kind: "Deployment"}, false},
		{"namespace", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default"}, true},
		{"other namespace", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "kube-system"}, false},
		{"name", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, true},
		{"other name", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"}, false},
		{"labels", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", LabelSelector: labelled("app", "web")}, true},
		{"other labels", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", LabelSelector: labelled("app", "api")}, false},
		{"name wins over labels", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", LabelSelector: labelled("app", "api")}, true},
		{"invalid selector", v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", LabelSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}},
		}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Selects(tt.sel, parse(t, deployment)); got != tt.selects {
				t.Errorf("Selects = %v, want %v", got, tt.selects)
			}
		})
	}
}

func TestApplyOrder(t *testing.T) {
	other := argsPolicy("other", "op-elsewhere")
	unselected := argsPolicy("", "cop-for-services")
	unselected.Spec.ResourceSelectors = []v1alpha1.ResourceSelector{{APIVersion: "v1", Kind: "Service"}}
	selected := argsPolicy("default", "op-b")
	selected.Spec.ResourceSelectors = []v1alpha1.ResourceSelector{{APIVersion: "v1", Kind: "Service"}, {APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}
	elsewhere := argsPolicy("", "cop-a")
	elsewhere.Spec.OverrideRules[0].TargetCluster = &v1alpha1.ClusterAffinity{ClusterNames: []string{"us"}}
	twoRules := argsPolicy("", "cop-c")
	twoRules.Spec.OverrideRules = append(twoRules.Spec.OverrideRules, v1alpha1.RuleWithCluster{
		TargetCluster: &v1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
		Overriders: v1alpha1.Overriders{
			ArgsOverrider: []v1alpha1.CommandArgsOverrider{{ContainerName: "app", Operator: v1alpha1.OverriderOpAdd, Value: []string{"prod-only"}}},
		},
	})
	policies := []Policy{argsPolicy("default", "op-c"), selected, other, argsPolicy("", "cop-z"), unselected, elsewhere, twoRules, argsPolicy("default", "op-a")}

	obj := parse(t, deployment)
	applied, err := Apply(obj, cluster("eu", map[string]string{"env": "prod"}), policies)
	if err != nil {
		t.Fatal(err)
	}
	wantApplied := []string{"ClusterOverridePolicy/cop-c", "ClusterOverridePolicy/cop-z", "OverridePolicy/default/op-a", "OverridePolicy/default/op-b", "OverridePolicy/default/op-c"}
	if !reflect.DeepEqual(applied, wantApplied) {
		t.Errorf("applied %q, want %q", applied, wantApplied)
	}
	args, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	got := args[0].(map[string]any)["args"]
	want := []any{"-v", "cop-c", "prod-only", "cop-z", "op-a", "op-b", "op-c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("args %v, want %v", got, want)
	}
}

func TestApplyClusterScoped(t *testing.T) {
	ns := parse(t, `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}`)
	label := func(ns, name string) Policy {
		return Policy{Namespace: ns, Name: name, Spec: v1alpha1.OverrideSpec{OverrideRules: []v1alpha1.RuleWithCluster{rule(v1alpha1.Overriders{
			LabelsOverrider: []v1alpha1.LabelAnnotationOverrider{{Operator: v1alpha1.OverriderOpAdd, Value: map[string]string{name: "yes"}}},
		})}}}
	}
	applied, err := Apply(ns, cluster("eu", nil), []Policy{label("team", "op"), label("", "cop")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ClusterOverridePolicy/cop"}; !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %q, want %q", applied, want)
	}
	if got := ns.GetLabels(); !reflect.DeepEqual(got, map[string]string{"cop": "yes"}) {
		t.Errorf("labels %v", got)
	}
}

func TestApplyError(t *testing.T) {
	p := Policy{Namespace: "default", Name: "op", Spec: v1alpha1.OverrideSpec{OverrideRules: []v1alpha1.RuleWithCluster{rule(v1alpha1.Overriders{
		LabelsOverrider: []v1alpha1.LabelAnnotationOverrider{{Operator: v1alpha1.OverriderOpAdd, Value: map[string]string{"changed": "yes"}}},
		Plaintext: []v1alpha1.PlaintextOverrider{
			plaintext(v1alpha1.OverriderOpReplace, "/spec/replicas", "5"),
			plaintext(v1alpha1.OverriderOpReplace, "/spec/foo/bar", `"x"`),
		},
	})}}}
	cop := Policy{Name: "cop", Spec: v1alpha1.OverrideSpec{OverrideRules: []v1alpha1.RuleWithCluster{rule(v1alpha1.Overriders{}), rule(v1alpha1.Overriders{
		ImageOverrider: []v1alpha1.ImageOverrider{{Component: v1alpha1.Repository, Operator: v1alpha1.OverriderOpRemove}},
	})}}}
	tests := []struct {
		name     string
		policies []Policy
		prefix   string
	}{
		{"plaintext", []Policy{p}, `OverridePolicy default/op: overrideRules[0].overriders.plaintext[1]: path "/spec/foo/bar": `},
		{"image", []Policy{cop}, `ClusterOverridePolicy cop: overrideRules[1].overriders.imageOverrider[0]: path "/spec/template/spec/containers/0/image": the repository cannot be removed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := parse(t, deployment)
			applied, err := Apply(obj, cluster("eu", nil), tt.policies)
			if err == nil || !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Fatalf("error %v, want one starting %s", err, tt.prefix)
			}
			if applied != nil {
				t.Errorf("applied %q on error", applied)
			}
			if want := parse(t, deployment); !reflect.DeepEqual(obj.Object, want.Object) {
				t.Errorf("object changed on error: %s", show(obj))
			}
		})
	}
}

func TestApplyOverriderOrder(t *testing.T) {
	// The plaintext overrider runs last, so it sees the image overrider's
	// result and the label the labels overrider added.
	p := Policy{Namespace: "default", Name: "op", Spec: v1alpha1.OverrideSpec{OverrideRules: []v1alpha1.RuleWithCluster{rule(v1alpha1.Overriders{
		Plaintext: []v1alpha1.PlaintextOverrider{
			plaintext(v1alpha1.OverriderOpReplace, "/metadata/labels/tier", `"final"`),
			plaintext(v1alpha1.OverriderOpReplace, "/spec/template/spec/containers/0/image", `"pinned:1"`),
		},
		LabelsOverrider: []v1alpha1.LabelAnnotationOverrider{{Operator: v1alpha1.OverriderOpAdd, Value: map[string]string{"tier": "web"}}},
		ImageOverrider:  []v1alpha1.ImageOverrider{{Component: v1alpha1.Tag, Operator: v1alpha1.OverriderOpReplace, Value: "2"}},
	})}}}
	obj := parse(t, deployment)
	if _, err := Apply(obj, cluster("eu", nil), []Policy{p}); err != nil {
		t.Fatal(err)
	}
	if got := obj.GetLabels()["tier"]; got != "final" {
		t.Errorf("label tier = %q, want final", got)
	}
	cs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if got := cs[0].(map[string]any)["image"]; got != "pinned:1" {
		t.Errorf("image = %v, want pinned:1", got)
	}
	if got := cs[1].(map[string]any)["image"]; got != "registry.example.com:5000/team/proxy:2" {
		t.Errorf("sidecar image = %v", got)
	}
}
