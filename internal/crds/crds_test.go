package crds

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// crdYAML is a minimal CRD file as controller-gen writes one.
func crdYAML(plural, extra string) string {
	return `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ` + plural + `.example.skiff.dev
spec:
  group: example.skiff.dev
  names:
    kind: Thing
    listKind: ThingList
    plural: ` + plural + `
    singular: thing
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
` + extra
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name    string
		files   fstest.MapFS
		want    []string // CRD names, in order
		wantErr string
	}{
		{
			name: "every matching file, in lexical order",
			files: fstest.MapFS{
				"crds/b.yaml":   {Data: []byte(crdYAML("bees", ""))},
				"crds/a.yaml":   {Data: []byte(crdYAML("ants", ""))},
				"crds/notes.md": {Data: []byte("# not a CRD")},
				"other/c.yaml":  {Data: []byte(crdYAML("cats", ""))},
			},
			want: []string{"ants.example.skiff.dev", "bees.example.skiff.dev"},
		},
		{
			name:  "nothing matches",
			files: fstest.MapFS{"README": {Data: []byte("x")}},
			want:  []string{},
		},
		{
			name: "an unknown field is an error naming the file",
			files: fstest.MapFS{
				"crds/a.yaml": {Data: []byte(crdYAML("ants", "    frobnicate: true\n"))},
			},
			wantErr: "decode CRD crds/a.yaml",
		},
		{
			name:    "not YAML",
			files:   fstest.MapFS{"crds/a.yaml": {Data: []byte("\t{")}},
			wantErr: "decode CRD crds/a.yaml",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.files, "crds/*.yaml")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Decode: %v; want an error with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, crd := range got {
				names = append(names, crd.Name)
				if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
					t.Errorf("%s: TypeMeta %v", crd.Name, crd.TypeMeta)
				}
			}
			if strings.Join(names, ",") != strings.Join(c.want, ",") {
				t.Errorf("Decode = %v; want %v", names, c.want)
			}
		})
	}
}

// establishOnGet makes the fake API server report every CRD it returns
// Established, as a real one does shortly after creating it.
func establishOnGet(client *fake.Clientset) {
	client.PrependReactor("get", "customresourcedefinitions", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj, err := client.Tracker().Get(a.GetResource(), "", a.(clienttesting.GetAction).GetName())
		if err != nil {
			return true, nil, err
		}
		crd := obj.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		crd.Status.Conditions = append(crd.Status.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue,
		})
		return true, crd, nil
	})
}

func decoded(t *testing.T, plurals ...string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files := fstest.MapFS{}
	for _, p := range plurals {
		files["crds/"+p+".yaml"] = &fstest.MapFile{Data: []byte(crdYAML(p, ""))}
	}
	out, err := Decode(files, "crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApply(t *testing.T) {
	client := fake.NewClientset()
	establishOnGet(client)
	in := decoded(t, "ants", "bees")
	in[0].Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: "Stale", Status: "True"}}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := Apply(ctx, client, "skiff-test", in); err != nil {
		t.Fatal(err)
	}
	// Again: applying is idempotent.
	if err := Apply(ctx, client, "skiff-test", in); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if len(in[0].Status.Conditions) != 1 {
		t.Errorf("Apply modified its input's status: %v", in[0].Status)
	}
	var patches []clienttesting.PatchAction
	for _, a := range client.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			patches = append(patches, p)
		}
	}
	if len(patches) != 4 {
		t.Fatalf("%d patches; want 2 per Apply", len(patches))
	}
	for _, p := range patches {
		if p.GetPatchType() != "application/apply-patch+yaml" {
			t.Errorf("patch of %s has type %s; want server-side apply", p.GetName(), p.GetPatchType())
		}
		if strings.Contains(string(p.GetPatch()), "Stale") {
			t.Errorf("patch of %s carries the status", p.GetName())
		}
	}
	for _, name := range []string{"ants.example.skiff.dev", "bees.example.skiff.dev"} {
		if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("CRD %s not applied: %v", name, err)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	t.Run("never established", func(t *testing.T) {
		client := fake.NewClientset()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := Apply(ctx, client, "skiff-test", decoded(t, "ants"))
		if err == nil || !strings.Contains(err.Error(), "wait for CRD ants.example.skiff.dev to be established") {
			t.Fatalf("Apply = %v; want a wait error naming the CRD", err)
		}
	})
	t.Run("apply refused", func(t *testing.T) {
		client := fake.NewClientset()
		refused := errors.New("admission says no")
		client.PrependReactor("patch", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, refused
		})
		err := Apply(t.Context(), client, "skiff-test", decoded(t, "ants"))
		if !errors.Is(err, refused) || !strings.Contains(err.Error(), "apply CRD ants.example.skiff.dev") {
			t.Fatalf("Apply = %v; want the refusal wrapped with the CRD's name", err)
		}
	})
}

func TestEstablished(t *testing.T) {
	cond := func(typ apiextensionsv1.CustomResourceDefinitionConditionType, s apiextensionsv1.ConditionStatus) apiextensionsv1.CustomResourceDefinitionCondition {
		return apiextensionsv1.CustomResourceDefinitionCondition{Type: typ, Status: s}
	}
	for _, c := range []struct {
		name  string
		conds []apiextensionsv1.CustomResourceDefinitionCondition
		want  bool
	}{
		{name: "no conditions"},
		{name: "names accepted only", conds: []apiextensionsv1.CustomResourceDefinitionCondition{cond(apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionTrue)}},
		{name: "established", conds: []apiextensionsv1.CustomResourceDefinitionCondition{cond(apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionTrue), cond(apiextensionsv1.Established, apiextensionsv1.ConditionTrue)}, want: true},
		{name: "not established", conds: []apiextensionsv1.CustomResourceDefinitionCondition{cond(apiextensionsv1.Established, apiextensionsv1.ConditionFalse)}},
	} {
		crd := &apiextensionsv1.CustomResourceDefinition{Status: apiextensionsv1.CustomResourceDefinitionStatus{Conditions: c.conds}}
		if got := Established(crd); got != c.want {
			t.Errorf("%s: Established = %v; want %v", c.name, got, c.want)
		}
	}
}

func TestServed(t *testing.T) {
	client := kubefake.NewClientset()
	client.Resources = []*metav1.APIResourceList{{GroupVersion: "example.skiff.dev/v1", APIResources: []metav1.APIResource{{Name: "things"}, {Name: "widgets"}}}}
	disc := client.Discovery()
	for _, tc := range []struct {
		gv        string
		resources []string
		want      bool
	}{
		{"example.skiff.dev/v1", []string{"things", "widgets"}, true},
		{"example.skiff.dev/v1", []string{"things"}, true},
		{"example.skiff.dev/v1", []string{"things", "gadgets"}, false},
		{"example.skiff.dev/v2", []string{"things"}, false},
	} {
		if got := Served(disc, tc.gv, tc.resources...); got != tc.want {
			t.Errorf("Served(%s, %v) = %v, want %v", tc.gv, tc.resources, got, tc.want)
		}
	}
}
