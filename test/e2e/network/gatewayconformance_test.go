package network

import (
	"context"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	"sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/internal/images"
)

// echoBasicImage matches the conformance manifests' backend image, which
// skiff builds from the same module (images/build) as EchoBasic.
var echoBasicImage = regexp.MustCompile(`registry\.k8s\.io/gateway-api/echo-basic:[^\s"']+`)

// corednsContainer matches the base manifests' CoreDNS container (the
// backend of UDPRoute tests), its args and image.
var corednsContainer = regexp.MustCompile(`(?m)^(\s+)- args:\n\s+- -conf\n\s+- /root/Corefile\n(\s+)image: registry\.k8s\.io/coredns/coredns:\S+`)

// conformanceManifests is the suite's manifests with the backend image
// replaced by skiff's build of it (no registry is reachable here), and the
// CoreDNS pod of the UDP tests by testhost answering DNS on port 53 (the
// tests ask it one A question through the Gateway).
func conformanceManifests(t *testing.T) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(&conformance.Manifests, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(&conformance.Manifests, path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") {
			data = echoBasicImage.ReplaceAll(data, []byte(images.EchoBasic+":"+images.LatestTag))
			data = corednsContainer.ReplaceAll(data, []byte("${1}- args:\n${2}  - dns\n${2}image: "+images.Testhost+":"+images.LatestTag))
		}
		out[path] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGatewayAPIConformance runs the Gateway API conformance suite of
// sigs.k8s.io/gateway-api/conformance (go.mod's version) against the
// GatewayClass skiff: the GATEWAY-HTTP profile's core tests and the
// extended ones of the features the class lists in
// status.supportedFeatures. The report is written to
// $GATEWAY_CONFORMANCE_REPORT when set.
func TestGatewayAPIConformance(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ctrlclient.New(rc, ctrlclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, install := range []func(*runtime.Scheme) error{v1alpha3.Install, v1alpha2.Install, v1beta1.Install, gwv1.Install, apiextensionsv1.AddToScheme} {
		if err := install(c.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	// The server installs the Gateway API in the background, and the nodes
	// then accept the class and list its features.
	eventually(t, 2*time.Minute, "GatewayClass skiff accepted, with its supported features", func() bool {
		gc := &gwv1.GatewayClass{}
		err := c.Get(context.Background(), ctrlclient.ObjectKey{Name: "skiff"}, gc)
		return err == nil && len(gc.Status.SupportedFeatures) > 0
	})
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			GatewayClassName:     "skiff",
			CleanupBaseResources: true,
			CleanupTestResources: true,
			TimeoutConfig:        config.DefaultTimeoutConfig(),
			ConformanceProfiles:  []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName, suite.GatewayGRPCConformanceProfileName, suite.GatewayTLSConformanceProfileName, suite.GatewayTCPConformanceProfileName, suite.GatewayUDPConformanceProfileName},
			Implementation: confv1.Implementation{
				Organization: "skiffdev",
				Project:      "skiff",
				URL:          "https://github.com/skiffdev/skiff",
				Version:      "dev",
				Contact:      []string{"https://github.com/skiffdev/skiff/issues"},
			},
			Mode: "default",
			// GatewayStaticAddresses: one address of the pool, one outside.
			UsableNetworkAddresses:   []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.IPAddressType), Value: strings.TrimSuffix(gatewayPool, "0/24") + "250"}},
			UnusableNetworkAddresses: []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "192.0.2.250"}},
		},
		Client:     c,
		Clientset:  cs,
		RestConfig: rc,
		ManifestFS: []fs.FS{conformanceManifests(t)},
	}
	cSuite, err := suite.NewConformanceTestSuite(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		report, err := cSuite.Report()
		if err != nil {
			t.Errorf("conformance report: %v", err)
			return
		}
		data, err := yaml.Marshal(report)
		if err != nil {
			t.Error(err)
			return
		}
		t.Logf("Gateway API conformance report:\n%s", data)
		if path := os.Getenv("GATEWAY_CONFORMANCE_REPORT"); path != "" {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	cSuite.Setup(t, tests.ConformanceTests)
	if err := cSuite.Run(t, tests.ConformanceTests); err != nil {
		t.Fatal(err)
	}
}
