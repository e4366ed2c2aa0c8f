// Package gatewayapi installs the Gateway API into a cluster: the CRDs of
// the standard (default) or the experimental channel of
// sigs.k8s.io/gateway-api, at the version go.mod pins, and the GatewayClass
// "skiff" whose Gateways every node's proxy (internal/ingress) serves.
//
// The CRD manifests in crds/CHANNEL/ are the module's own, unmodified; the test
// TestCRDsMatchModule keeps them equal to the pinned module's (run it with
// UPDATE_CRDS=1 after changing the version in go.mod).
package gatewayapi

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/internal/ingress"
)

// BundleVersion is the Gateway API release whose CRDs are installed.
const BundleVersion = "v1.6.3"

// Annotations the Gateway API puts on its CRDs.
const (
	annBundleVersion = "gateway.networking.k8s.io/bundle-version"
	annChannel       = "gateway.networking.k8s.io/channel"
)

// annManaged marks CRDs skiff installed, which it may upgrade; CRDs
// installed by someone else are left as they are.
const annManaged = "skiff.dev/managed"

// Channel is a release channel of the Gateway API's CRDs.
type Channel string

// The channels: standard holds the stable kinds and fields; experimental
// adds fields such as HTTPRoute's retry and sessionPersistence and kinds
// such as XBackendTrafficPolicy.
const (
	Standard     Channel = "standard"
	Experimental Channel = "experimental"
)

// groups are the API groups of the Gateway API's CRDs.
var groups = []string{"gateway.networking.k8s.io", "gateway.networking.x-k8s.io"}

//go:embed crds/standard/*.yaml crds/experimental/*.yaml
var crdFiles embed.FS

// crdName is the name of the CRD in a manifest file named GROUP_PLURAL.yaml.
func crdName(file string) string {
	group, plural, _ := strings.Cut(strings.TrimSuffix(path.Base(file), ".yaml"), "_")
	return plural + "." + group
}

// manifests lists the embedded CRD manifest files of ch, sorted.
func manifests(ch Channel) ([]string, error) {
	return fs.Glob(crdFiles, path.Join("crds", string(ch), "*.yaml"))
}

func decode(file string) (*apiextensionsv1.CustomResourceDefinition, error) {
	b, err := crdFiles.ReadFile(file)
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(b, crd); err != nil {
		return nil, fmt.Errorf("%s: %w", path.Base(file), err)
	}
	if crd.Name != crdName(file) {
		return nil, fmt.Errorf("%s holds CRD %s", path.Base(file), crd.Name)
	}
	return crd, nil
}

// Install creates the Gateway API CRDs of ch that are missing, upgrades the
// ones skiff installed at another version or channel, deletes the ones
// skiff installed that ch does not have (the experimental kinds, back on the
// standard channel: their objects go with them), leaves alone the ones
// someone else installed, and waits until all are established. Manifests
// are decoded only when a CRD must be written.
func Install(ctx context.Context, client apiextensions.Interface, ch Channel, log *slog.Logger) error {
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	files, err := manifests(ch)
	if err != nil {
		return err
	}
	var names []string
	for _, f := range files {
		name := crdName(f)
		names = append(names, name)
		old, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("gateway api: get CRD %s: %w", name, err)
		}
		if err == nil && old.Annotations[annManaged] != "true" {
			if old.Annotations[annBundleVersion] != BundleVersion {
				log.Warn("a Gateway API CRD installed by someone else is left as it is",
					"crd", name, "version", old.Annotations[annBundleVersion], "channel", old.Annotations[annChannel],
					"skiff_version", BundleVersion)
			}
			continue
		}
		if err == nil && old.Annotations[annBundleVersion] == BundleVersion && old.Annotations[annChannel] == string(ch) {
			continue
		}
		crd, derr := decode(f)
		if derr != nil {
			return fmt.Errorf("gateway api: %w", derr)
		}
		crd.Annotations[annManaged] = "true"
		if err != nil { // not found
			if _, err := crds.Create(ctx, crd, metav1.CreateOptions{FieldManager: "skiff"}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("gateway api: create CRD %s: %w", name, err)
			}
			continue
		}
		crd.ResourceVersion = old.ResourceVersion
		if _, err := crds.Update(ctx, crd, metav1.UpdateOptions{FieldManager: "skiff"}); err != nil {
			return fmt.Errorf("gateway api: upgrade CRD %s from %s: %w", name, old.Annotations[annBundleVersion], err)
		}
		log.Info("upgraded Gateway API CRD", "crd", name,
			"from", old.Annotations[annBundleVersion]+" "+old.Annotations[annChannel], "to", BundleVersion+" "+string(ch))
	}
	all, err := crds.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("gateway api: list CRDs: %w", err)
	}
	for _, crd := range all.Items {
		if crd.Annotations[annManaged] != "true" || !slices.Contains(groups, crd.Spec.Group) || slices.Contains(names, crd.Name) {
			continue
		}
		if err := crds.Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("gateway api: delete CRD %s, not in the %s channel: %w", crd.Name, ch, err)
		}
		log.Info("deleted a Gateway API CRD the channel does not have", "crd", crd.Name, "channel", ch)
	}
	// Established takes a moment after create.
	var pending string
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			got, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil || !established(got) {
				pending = name
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("gateway api: CRD %s is not established after 30s", pending)
		}
		return fmt.Errorf("gateway api: wait for CRDs: %w", err)
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// EnsureClass creates the GatewayClass "skiff" when it does not exist.
func EnsureClass(ctx context.Context, client gateway.Interface) error {
	gc := &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: ingress.GatewayClassName},
		Spec: gwv1.GatewayClassSpec{
			ControllerName: ingress.GatewayControllerName,
			Description:    ptr.To("The skiff proxy on every node"),
		},
	}
	_, err := client.GatewayV1().GatewayClasses().Create(ctx, gc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("gateway api: create GatewayClass %s: %w", gc.Name, err)
	}
	return nil
}
