package gatewayapi

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCRDsMatchModule checks that crds/ holds the pinned module's standard
// channel CRDs, unmodified; with UPDATE_CRDS=1 it copies them from there.
func TestCRDsMatchModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list the gateway-api module: %v", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != BundleVersion {
		t.Errorf("go.mod pins sigs.k8s.io/gateway-api %s, BundleVersion is %s", version, BundleVersion)
	}
	src, err := filepath.Glob(filepath.Join(dir, "config/crd/standard/gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(src) == 0 {
		t.Fatalf("no CRDs in %s (%v)", dir, err)
	}
	var want []string
	for _, f := range src {
		if strings.Contains(f, "_vap_") { // an admission policy, not a CRD
			continue
		}
		want = append(want, filepath.Base(f))
		mod, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ours := filepath.Join("crds", filepath.Base(f))
		if os.Getenv("UPDATE_CRDS") == "1" {
			if err := os.WriteFile(ours, mod, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(ours)
		if err != nil || !bytes.Equal(got, mod) {
			t.Errorf("%s differs from the module's (%v); run UPDATE_CRDS=1 go test ./internal/gatewayapi", ours, err)
		}
	}
	files, err := manifests()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("crds/ has %d manifests, the module's standard channel %d", len(files), len(want))
	}
}

func TestManifestsDecode(t *testing.T) {
	files, err := manifests()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		crd, err := decode(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if crd.Annotations[annBundleVersion] != BundleVersion || crd.Annotations[annChannel] != "standard" {
			t.Errorf("%s: bundle %q channel %q", crd.Name, crd.Annotations[annBundleVersion], crd.Annotations[annChannel])
		}
	}
}
