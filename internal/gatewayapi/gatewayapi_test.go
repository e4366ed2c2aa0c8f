package gatewayapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// TestCRDsMatchModule checks that crds/CHANNEL/ holds the pinned module's
// CRDs of each channel, unmodified; with UPDATE_CRDS=1 it copies them from
// there.
func TestCRDsMatchModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list the gateway-api module: %v", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != BundleVersion {
		t.Errorf("go.mod pins sigs.k8s.io/gateway-api %s, BundleVersion is %s", version, BundleVersion)
	}
	for _, ch := range []Channel{Standard, Experimental} {
		src, err := filepath.Glob(filepath.Join(dir, "config/crd", string(ch), "gateway.networking.*.yaml"))
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
			ours := filepath.Join("crds", string(ch), filepath.Base(f))
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
		files, err := manifests(ch)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != len(want) {
			t.Errorf("crds/%s has %d manifests, the module's %s channel %d", ch, len(files), ch, len(want))
		}
	}
}

func TestManifestsDecode(t *testing.T) {
	for _, ch := range []Channel{Standard, Experimental} {
		files, err := manifests(ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			crd, err := decode(f)
			if err != nil {
				t.Error(err)
				continue
			}
			if crd.Annotations[annBundleVersion] != BundleVersion || crd.Annotations[annChannel] != string(ch) {
				t.Errorf("%s: bundle %q channel %q, want %s %s", f, crd.Annotations[annBundleVersion], crd.Annotations[annChannel], BundleVersion, ch)
			}
		}
	}
}

// TestInstallChannels: a fresh install, a switch to the experimental
// channel (its extra CRDs created, the others upgraded), a switch back
// (the extra ones deleted), and a CRD someone else installed left alone
// throughout.
func TestInstallChannels(t *testing.T) {
	foreign := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "xmeshes.gateway.networking.x-k8s.io"},
		Spec:       apiextensionsv1.CustomResourceDefinitionSpec{Group: "gateway.networking.x-k8s.io"},
		Status:     apiextensionsv1.CustomResourceDefinitionStatus{Conditions: []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}},
	}
	client := fake.NewClientset(foreign)
	// The fake API server does not establish CRDs: do it as they are written.
	establish := func(action k8stesting.Action) (bool, runtime.Object, error) {
		if o, ok := action.(k8stesting.CreateAction); ok {
			crd := o.GetObject().(*apiextensionsv1.CustomResourceDefinition)
			crd.Status.Conditions = foreign.Status.Conditions
		}
		return false, nil, nil
	}
	client.PrependReactor("create", "customresourcedefinitions", establish)
	client.PrependReactor("update", "customresourcedefinitions", establish)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	channels := func() map[string]string {
		list, err := client.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, c := range list.Items {
			out[c.Name] = c.Annotations[annChannel]
		}
		return out
	}
	for _, step := range []struct {
		ch               Channel
		crds             int
		retry, xPolicies bool
	}{
		{Standard, 11, false, false},   // 10 and the foreign one
		{Experimental, 13, true, true}, // + xbackends, xbackendtrafficpolicies; xmeshes stays foreign
		{Standard, 11, false, false},
	} {
		if err := Install(ctx, client, step.ch, log); err != nil {
			t.Fatalf("Install(%s): %v", step.ch, err)
		}
		got := channels()
		if len(got) != step.crds {
			t.Errorf("after Install(%s): %d CRDs %v, want %d", step.ch, len(got), got, step.crds)
		}
		if got["httproutes.gateway.networking.k8s.io"] != string(step.ch) {
			t.Errorf("after Install(%s): httproutes channel %q", step.ch, got["httproutes.gateway.networking.k8s.io"])
		}
		if _, ok := got["xbackendtrafficpolicies.gateway.networking.x-k8s.io"]; ok != step.xPolicies {
			t.Errorf("after Install(%s): xbackendtrafficpolicies present %v, want %v", step.ch, ok, step.xPolicies)
		}
		if got["xmeshes.gateway.networking.x-k8s.io"] != "" {
			t.Errorf("after Install(%s): the foreign xmeshes CRD was changed: channel %q", step.ch, got["xmeshes.gateway.networking.x-k8s.io"])
		}
		hr, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "httproutes.gateway.networking.k8s.io", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(hr.Spec)
		if has := bytes.Contains(raw, []byte(`"retry"`)); has != step.retry {
			t.Errorf("after Install(%s): HTTPRoute schema has retry %v, want %v", step.ch, has, step.retry)
		}
	}
}
