package override

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// podSpecPath is where the kind keeps its pod spec; nil for kinds without
// one.
func podSpecPath(kind string) []string {
	switch kind {
	case "Pod":
		return []string{"spec"}
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job":
		return []string{"spec", "template", "spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	default:
		return nil
	}
}

// podSpec returns obj's pod spec, nil when the kind has none or the object
// lacks it.
func podSpec(obj *unstructured.Unstructured) map[string]any {
	path := podSpecPath(obj.GetKind())
	if path == nil {
		return nil
	}
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	spec, _ := v.(map[string]any)
	return spec
}

// containers returns the pod spec's entries of field ("containers",
// "initContainers") that are objects.
func containers(spec map[string]any, field string) []map[string]any {
	list, _ := spec[field].([]any)
	var out []map[string]any
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// overrideList adds to or removes from field ("command" or "args") of the
// pod template's container o.ContainerName.
func overrideList(obj *unstructured.Unstructured, field string, o v1alpha1.CommandArgsOverrider) error {
	if o.Operator != v1alpha1.OverriderOpAdd && o.Operator != v1alpha1.OverriderOpRemove {
		return fmt.Errorf("operator %q: want add or remove", o.Operator)
	}
	spec := podSpec(obj)
	if spec == nil {
		return nil
	}
	for _, c := range containers(spec, "containers") {
		if c["name"] != o.ContainerName {
			continue
		}
		have, _ := c[field].([]any)
		var list []any
		switch o.Operator {
		case v1alpha1.OverriderOpAdd:
			list = slices.Clone(have)
			for _, v := range o.Value {
				list = append(list, v)
			}
		case v1alpha1.OverriderOpRemove:
			for _, v := range have {
				if s, ok := v.(string); !ok || !slices.Contains(o.Value, s) {
					list = append(list, v)
				}
			}
		}
		if len(list) == 0 {
			delete(c, field)
		} else {
			c[field] = list
		}
	}
	return nil
}

// overrideMap returns labels or annotations m changed by o.
func overrideMap(m map[string]string, o v1alpha1.LabelAnnotationOverrider) (map[string]string, error) {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	switch o.Operator {
	case v1alpha1.OverriderOpAdd:
		maps.Copy(out, o.Value)
	case v1alpha1.OverriderOpReplace:
		for k, v := range o.Value {
			if _, ok := out[k]; ok {
				out[k] = v
			}
		}
	case v1alpha1.OverriderOpRemove:
		for k := range o.Value {
			delete(out, k)
		}
	default:
		return nil, fmt.Errorf("operator %q: want add, replace or remove", o.Operator)
	}
	return out, nil
}

// setMap sets metadata.field ("labels", "annotations") to m, removing the
// field when m is empty.
func setMap(obj *unstructured.Unstructured, field string, m map[string]string) {
	if len(m) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", field)
		return
	}
	v := make(map[string]any, len(m))
	for k, s := range m {
		v[k] = s
	}
	_ = unstructured.SetNestedField(obj.Object, v, "metadata", field)
}

// operation is one RFC 6902 operation.
type operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// patch applies the plaintext overriders to obj, one operation at a time
// so that an error names the one that failed. The zero ApplyOptions are
// RFC 6902's rules: no negative array indices, no parents made up by add,
// remove fails on a missing path.
func patch(obj *unstructured.Unstructured, ops []v1alpha1.PlaintextOverrider) error {
	doc, err := json.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("plaintext: %w", err)
	}
	for i, o := range ops {
		op := operation{Op: string(o.Operator), Path: o.Path}
		switch o.Operator {
		case v1alpha1.OverriderOpAdd, v1alpha1.OverriderOpReplace:
			op.Value = json.RawMessage("null")
			if len(o.Value.Raw) > 0 {
				op.Value = o.Value.Raw
			}
		case v1alpha1.OverriderOpRemove:
		default:
			return fmt.Errorf("plaintext[%d]: operator %q: want add, replace or remove", i, o.Operator)
		}
		raw, err := json.Marshal([]operation{op})
		if err != nil {
			return fmt.Errorf("plaintext[%d]: path %q: %w", i, o.Path, err)
		}
		p, err := jsonpatch.DecodePatch(raw)
		if err == nil {
			doc, err = p.ApplyWithOptions(doc, &jsonpatch.ApplyOptions{})
		}
		if err != nil {
			return fmt.Errorf("plaintext[%d]: path %q: %w", i, o.Path, err)
		}
	}
	var out map[string]any
	if err := utiljson.Unmarshal(doc, &out); err != nil {
		return fmt.Errorf("plaintext: %w", err)
	}
	obj.Object = out
	return nil
}
