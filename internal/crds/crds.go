package crds

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"
)

// How Apply waits for the API server to serve what it applied.
const (
	pollInterval = 100 * time.Millisecond
	// establishTimeout bounds the wait when ctx has no earlier deadline.
	establishTimeout = 30 * time.Second
)

// Decode reads every file of fsys that matches pattern (fs.Glob syntax,
// e.g. "crds/*.yaml") as one CustomResourceDefinition, strictly: a field
// the v1 type does not know is an error that names the file. The files are
// read in lexical order; none matching is not an error.
func Decode(fsys fs.FS, pattern string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("decode CRDs %q: %w", pattern, err)
	}
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("decode CRD %s: %w", f, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			return nil, fmt.Errorf("decode CRD %s: %w", f, err)
		}
		crd.APIVersion, crd.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
		out = append(out, crd)
	}
	return out, nil
}

// Apply applies crds server-side as fieldManager, forcing conflicts (the
// manager owns the CRDs' spec), and waits until the API server reports
// every one Established, for at most 30 seconds or until ctx ends. A CRD's
// status is cleared before it is sent; crds are otherwise not modified.
func Apply(ctx context.Context, client apiextensions.Interface, fieldManager string, crds []*apiextensionsv1.CustomResourceDefinition) error {
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	names := make([]string, 0, len(crds))
	for _, crd := range crds {
		body := crd.DeepCopy()
		body.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
		b, err := yaml.Marshal(body)
		if err != nil {
			return fmt.Errorf("apply CRD %s: %w", crd.Name, err)
		}
		if _, err := api.Patch(ctx, crd.Name, "application/apply-patch+yaml", b,
			metav1.PatchOptions{FieldManager: fieldManager, Force: new(true)}); err != nil {
			return fmt.Errorf("apply CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	return waitEstablished(ctx, client, names)
}

// waitEstablished polls until every named CRD is Established.
func waitEstablished(ctx context.Context, client apiextensions.Interface, names []string) error {
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	var pending string
	err := wait.PollUntilContextTimeout(ctx, pollInterval, establishTimeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			got, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil || !Established(got) {
				pending = name
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CRD %s to be established: %w", pending, err)
	}
	return nil
}

// Established reports whether the API server serves crd: its Established
// condition is True.
func Established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// Served tells whether the API server serves every one of resources (plural
// names) in groupVersion, as discovery reports it: what a client of CRDs it
// did not install itself waits for before starting informers on them.
func Served(client discovery.DiscoveryInterface, groupVersion string, resources ...string) bool {
	list, err := client.ServerResourcesForGroupVersion(groupVersion)
	if err != nil {
		return false
	}
	for _, want := range resources {
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == want }) {
			return false
		}
	}
	return true
}
