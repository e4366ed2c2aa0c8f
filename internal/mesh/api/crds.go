package api

import (
	"context"
	"embed"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"

	"github.com/skiffdev/skiff/internal/crds"
)

// fieldManager is the field manager InstallCRDs applies as.
const fieldManager = "skiff-mesh"

// crdFiles are controller-gen's output for ./internal/mesh/api/... (the
// Makefile's generate target). go:embed cannot reach a parent directory,
// so they are generated here, beside the code that embeds them.
//
//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs decodes the mesh API's CRDs: AuthorizationPolicy and
// PeerAuthentication in mesh.skiff.dev.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return crds.Decode(crdFiles, "crds/*.yaml")
}

// InstallCRDs applies the mesh API's CRDs server-side (an upgrade updates
// them) and waits until the API server serves them.
func InstallCRDs(ctx context.Context, client apiextensions.Interface) error {
	all, err := CRDs()
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	if err := crds.Apply(ctx, client, fieldManager, all); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	return nil
}
