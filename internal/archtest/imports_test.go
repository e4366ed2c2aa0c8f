// Package archtest guards skiff's architecture (STYLE.md habit 14): which of
// skiff's packages may import which. A new package, or a new edge between
// packages, is a decision: make it here, where the reviewer sees it.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/skiffdev/skiff/"

// allowed lists, for every non-test package of the binary and its images,
// the skiff packages it may import. The shape: cmd/skiff composes; server
// and agent assemble components; the leaves import no skiff package at all.
var allowed = map[string][]string{
	"cmd/skiff":                     {"internal/agent", "internal/clusterconfig", "internal/component", "internal/fleet", "internal/fleet/agent", "internal/fleet/upstream", "internal/gatewayapi", "internal/jointoken", "internal/mesh", "internal/mesh/api/v1alpha1", "internal/mesh/authz", "internal/secretsencrypt", "internal/server", "internal/pki", "internal/progress", "internal/sim", "internal/storage", "internal/supervise"},
	"internal/server":               {"internal/clusterconfig", "internal/component", "internal/dashboard", "internal/controller/ingresslb", "internal/controller/leader", "internal/controller/localpath", "internal/controller/meshca", "internal/controller/servicelb", "internal/dns", "internal/fleet", "internal/fleet/agent", "internal/fleet/tunnel", "internal/fleet/upstream", "internal/gatewayapi", "internal/gctune", "internal/ingress", "internal/jointoken", "internal/kubeconfig", "internal/mesh/api", "internal/pki", "internal/secretsencrypt", "internal/storage", "internal/supervise"},
	"internal/agent":                {"internal/agent/apilb", "internal/agent/netpol", "internal/agent/podnet", "internal/clusterconfig", "internal/component", "internal/controller/ingresslb", "internal/controller/localpath", "internal/gctune", "internal/images", "internal/images/builtin", "internal/ingress", "internal/jointoken", "internal/kubeconfig", "internal/mesh", "internal/supervise"},
	"internal/supervise":            {"internal/component"},
	"internal/agent/apilb":          nil,
	"internal/images/builtin":       nil,
	"internal/agent/netpol":         {"internal/changes"},
	"internal/agent/podnet":         {"internal/changes"},
	"internal/ingress":              {"internal/changes", "internal/crds"},
	"internal/gatewayapi":           {"internal/ingress"},
	"internal/clusterconfig":        nil,
	"internal/component":            nil,
	"internal/controller/localpath": {"internal/controller/leader"},
	"internal/controller/leader":    nil,
	"internal/controller/servicelb": nil,
	"internal/controller/ingresslb": {"internal/changes", "internal/metricsreg"},
	"internal/controller/meshca":    {"internal/metricsreg", "internal/pki"},
	"internal/changes":              nil,
	"internal/gctune":               nil,
	"internal/dns":                  {"internal/changes", "internal/metricsreg"},
	"internal/freeport":             nil,
	"internal/images":               nil,
	"internal/jointoken":            nil,
	"internal/kubeconfig":           nil,
	"internal/pki":                  nil,
	"internal/progress":             nil,
	"internal/dashboard":            nil,
	"internal/sim":                  nil,
	"internal/secretsencrypt":       nil,
	"internal/storage":              {"internal/metricsreg"},
	"internal/metricsreg":           nil,
	"internal/fleet":                {"internal/crds"},
	"internal/fleet/api/v1alpha1":   nil,
	"internal/fleet/placement":      {"internal/fleet/api/v1alpha1"},
	"internal/fleet/override":       {"internal/fleet/api/v1alpha1", "internal/fleet/placement"},
	"internal/fleet/aggregate":      {"internal/fleet/api/v1alpha1"},
	"internal/fleet/upstream":       {"internal/fleet", "internal/fleet/aggregate", "internal/fleet/api/v1alpha1", "internal/fleet/override", "internal/fleet/placement", "internal/fleet/tunnel"},
	"internal/fleet/agent":          {"internal/fleet", "internal/fleet/aggregate", "internal/fleet/api/v1alpha1", "internal/fleet/tunnel", "internal/jointoken"},
	"internal/fleet/tunnel":         nil,
	"internal/crds":                 nil,
	"internal/mesh":                 {"internal/changes", "internal/controller/meshca", "internal/crds", "internal/mesh/api/v1alpha1", "internal/mesh/authz"},
	"internal/mesh/api":             {"internal/crds"},
	"internal/mesh/api/v1alpha1":    nil,
	"internal/mesh/authz":           {"internal/mesh/api/v1alpha1"},
	"images/build":                  {"internal/images"},
	"images/conformance":            {"internal/images"},
	"images/pause":                  nil,
	"images/testhost":               nil,
}

func TestImports(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, top := range []string{"cmd", "internal", "images"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			pkg := filepath.ToSlash(rel)
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			want, known := allowed[pkg]
			if !known {
				if !seen[pkg] {
					t.Errorf("package %s is not in the architecture's list: add it to allowed with the skiff packages it may import", pkg)
				}
				seen[pkg] = true
				return nil
			}
			seen[pkg] = true
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(p, module)
				if ok && !slices.Contains(want, dep) {
					t.Errorf("%s imports %s, which the architecture does not allow (allowed: %v)", filepath.Base(path), dep, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("package %s is in the architecture's list but not in the tree: remove it", pkg)
		}
	}
}
