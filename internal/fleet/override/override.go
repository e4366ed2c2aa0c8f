package override

import (
	"cmp"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/fleet/placement"
)

// Policy is an OverridePolicy (Namespace set) or a ClusterOverridePolicy
// (Namespace empty).
type Policy struct {
	// Namespace is an OverridePolicy's namespace, empty for a
	// ClusterOverridePolicy.
	Namespace string
	// Name is the policy's name.
	Name string
	// Spec is the policy's spec.
	Spec v1alpha1.OverrideSpec
}

// String names the policy as Apply reports it applied:
// "OverridePolicy/NS/NAME" or "ClusterOverridePolicy/NAME".
func (p Policy) String() string {
	if p.Namespace == "" {
		return "ClusterOverridePolicy/" + p.Name
	}
	return "OverridePolicy/" + p.Namespace + "/" + p.Name
}

// describe names the policy in errors: "OverridePolicy NS/NAME".
func (p Policy) describe() string {
	if p.Namespace == "" {
		return "ClusterOverridePolicy " + p.Name
	}
	return "OverridePolicy " + p.Namespace + "/" + p.Name
}

// Selects reports whether sel selects obj: apiVersion and kind equal, the
// namespace and the name equal when set, and, when the name is not set,
// the labels matching labelSelector when set (an invalid selector selects
// nothing).
func Selects(sel v1alpha1.ResourceSelector, obj *unstructured.Unstructured) bool {
	if sel.APIVersion != obj.GetAPIVersion() || sel.Kind != obj.GetKind() {
		return false
	}
	if sel.Namespace != "" && sel.Namespace != obj.GetNamespace() {
		return false
	}
	if sel.Name != "" {
		return sel.Name == obj.GetName()
	}
	if sel.LabelSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(sel.LabelSelector)
		if err != nil || !s.Matches(labels.Set(obj.GetLabels())) {
			return false
		}
	}
	return true
}

// selects reports whether p applies to obj: a namespaced policy only to
// objects of its namespace, and no selectors select everything.
func (p Policy) selects(obj *unstructured.Unstructured) bool {
	if p.Namespace != "" && p.Namespace != obj.GetNamespace() {
		return false
	}
	if len(p.Spec.ResourceSelectors) == 0 {
		return true
	}
	for _, sel := range p.Spec.ResourceSelectors {
		if Selects(sel, obj) {
			return true
		}
	}
	return false
}

// Apply rewrites obj in place for cluster c with every policy that selects
// it, in the order of the package comment, and returns the names of the
// policies applied, in order. On an error obj is unchanged.
func Apply(obj *unstructured.Unstructured, c *v1alpha1.Cluster, policies []Policy) ([]string, error) {
	var ordered []Policy
	for _, p := range policies {
		if p.selects(obj) {
			ordered = append(ordered, p)
		}
	}
	slices.SortStableFunc(ordered, func(a, b Policy) int {
		if (a.Namespace == "") != (b.Namespace == "") {
			if a.Namespace == "" {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})

	work := obj.DeepCopy()
	var applied []string
	for _, p := range ordered {
		used := false
		for i, rule := range p.Spec.OverrideRules {
			if !placement.MatchesAffinity(rule.TargetCluster, c) {
				continue
			}
			used = true
			if err := applyRule(work, &rule.Overriders); err != nil {
				return nil, fmt.Errorf("%s: overrideRules[%d].overriders.%w", p.describe(), i, err)
			}
		}
		if used {
			applied = append(applied, p.String())
		}
	}
	obj.Object = work.Object
	return applied, nil
}

// applyRule runs one rule's overriders in their fixed order. Its errors
// start with the overrider, e.g. "plaintext[1]: …".
func applyRule(obj *unstructured.Unstructured, o *v1alpha1.Overriders) error {
	for i, io := range o.ImageOverrider {
		if err := overrideImages(obj, io); err != nil {
			return fmt.Errorf("imageOverrider[%d]: %w", i, err)
		}
	}
	for i, co := range o.CommandOverrider {
		if err := overrideList(obj, "command", co); err != nil {
			return fmt.Errorf("commandOverrider[%d]: %w", i, err)
		}
	}
	for i, ao := range o.ArgsOverrider {
		if err := overrideList(obj, "args", ao); err != nil {
			return fmt.Errorf("argsOverrider[%d]: %w", i, err)
		}
	}
	for i, lo := range o.LabelsOverrider {
		m, err := overrideMap(obj.GetLabels(), lo)
		if err != nil {
			return fmt.Errorf("labelsOverrider[%d]: %w", i, err)
		}
		setMap(obj, "labels", m)
	}
	for i, ao := range o.AnnotationsOverrider {
		m, err := overrideMap(obj.GetAnnotations(), ao)
		if err != nil {
			return fmt.Errorf("annotationsOverrider[%d]: %w", i, err)
		}
		setMap(obj, "annotations", m)
	}
	if len(o.Plaintext) > 0 {
		if err := patch(obj, o.Plaintext); err != nil {
			return err
		}
	}
	return nil
}
