package fleet

import (
	"strings"
	"testing"
)

func TestCRDsDecode(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"clusters.fleet.skiff.dev": "Cluster", "propagationpolicies.fleet.skiff.dev": "Namespaced",
		"clusterpropagationpolicies.fleet.skiff.dev": "Cluster", "overridepolicies.fleet.skiff.dev": "Namespaced",
		"clusteroverridepolicies.fleet.skiff.dev": "Cluster", "resourcebindings.fleet.skiff.dev": "Namespaced",
		"clusterresourcebindings.fleet.skiff.dev": "Cluster", "works.fleet.skiff.dev": "Namespaced",
	}
	if len(crds) != len(want) {
		t.Fatalf("%d CRDs, want %d", len(crds), len(want))
	}
	for _, c := range crds {
		if scope, ok := want[c.Name]; !ok || string(c.Spec.Scope) != scope {
			t.Errorf("CRD %s scope %s; want %q", c.Name, c.Spec.Scope, scope)
		}
		if len(c.Spec.Versions) != 1 || c.Spec.Versions[0].Name != "v1alpha1" || c.Spec.Versions[0].Schema == nil {
			t.Errorf("CRD %s: want one version v1alpha1 with a schema", c.Name)
		}
	}
}

func TestParseToken(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, c := range []struct {
		in, err string
	}{
		{in: "SKF1" + hash + "::eyJ.a-b_c.d\n"},
		{in: "K10" + hash + "::abcdef.0123456789abcdef", err: "does not start with SKF1"},
		{in: "SKF1" + hash[:10] + "::x", err: "want SKF1<64 hex digits>"},
		{in: "SKF1" + strings.Repeat("zz", 32) + "::x", err: "want SKF1<64 hex digits>"},
		{in: "SKF1" + hash + "::a b", err: "characters a bearer token cannot have"},
	} {
		tok, err := ParseToken(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseToken(%q) = %v; want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || tok.CAHash != hash || tok.Bearer != "eyJ.a-b_c.d" || tok.String() != strings.TrimSpace(c.in) {
			t.Errorf("ParseToken(%q) = %+v, %v", c.in, tok, err)
		}
	}
}

func TestValidateClusterName(t *testing.T) {
	for name, ok := range map[string]bool{"east": true, "edge-07": true, "": false, "East": false, "-a": false, "a.b": false, strings.Repeat("a", 50): false} {
		if err := ValidateClusterName(name); (err == nil) != ok {
			t.Errorf("ValidateClusterName(%q) = %v", name, err)
		}
	}
}
