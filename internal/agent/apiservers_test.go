package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/internal/kubeconfig"
)

// endpointSlice builds an EndpointSlice of the kubernetes Service with a
// port and endpoints ("10.0.0.1" ready, "!10.0.0.1" not ready).
func endpointSlice(portName string, port int32, endpoints ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port)}},
	}
	for _, e := range endpoints {
		ready := e[0] != '!'
		if !ready {
			e = e[1:]
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}})
	}
	return s
}

func TestAPIServers(t *testing.T) {
	noCondition := endpointSlice("https", 6443)
	noCondition.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}}}
	v6 := endpointSlice("https", 6443, "2001:db8::1")
	v6.AddressType = discoveryv1.AddressTypeIPv6
	for _, tc := range []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []string
	}{
		{"none", nil, nil},
		{"ready ones, sorted", []*discoveryv1.EndpointSlice{endpointSlice("https", 6443, "10.0.0.2", "!10.0.0.3", "10.0.0.1")}, []string{"10.0.0.1:6443", "10.0.0.2:6443"}},
		{"no condition is ready", []*discoveryv1.EndpointSlice{noCondition}, []string{"10.0.0.9:6443"}},
		{"the https port only", []*discoveryv1.EndpointSlice{endpointSlice("other", 8080, "10.0.0.1")}, nil},
		{"several slices, repeated", []*discoveryv1.EndpointSlice{endpointSlice("https", 6443, "10.0.0.1"), endpointSlice("https", 6443, "10.0.0.1"), v6}, []string{"10.0.0.1:6443", "[2001:db8::1]:6443"}},
	} {
		if got := apiServers(tc.slices); !slices.Equal(got, tc.want) {
			t.Errorf("%s: apiServers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A kubelet kubeconfig of an earlier start is pointed at the load
// balancer, keeping its credentials; with none, nothing is written.
func TestPointKubeletAt(t *testing.T) {
	a := &Agent{cfg: Config{DataDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)}}
	if err := a.pointKubeletAt("https://127.0.0.1:6444"); err != nil {
		t.Fatalf("with no kubeconfig: %v", err)
	}
	if _, err := os.Stat(a.kubeletKubeconfig()); !os.IsNotExist(err) {
		t.Fatalf("a kubeconfig was written where there was none: %v", err)
	}

	if err := kubeconfig.Write(a.kubeletKubeconfig(), "https://192.0.2.1:6443", []byte("CA"), "system:node:n1", kubeconfig.Credentials{Token: "secret"}); err != nil {
		t.Fatal(err)
	}
	if err := a.pointKubeletAt("https://127.0.0.1:6444"); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(a.kubeletKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cluster, user := cfg.Clusters["default"], cfg.AuthInfos["system:node:n1"]
	if cluster == nil || cluster.Server != "https://127.0.0.1:6444" || string(cluster.CertificateAuthorityData) != "CA" {
		t.Errorf("cluster %+v, want the load balancer's URL and the same CA", cluster)
	}
	if user == nil || user.Token != "secret" || cfg.CurrentContext != "default" {
		t.Errorf("user %+v, context %q: the credentials changed", user, cfg.CurrentContext)
	}
	if _, err := os.Stat(filepath.Join(a.cfg.DataDir, "kubelet.kubeconfig.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// Nodes fail over in orders of their own, each always the same.
func TestSpread(t *testing.T) {
	servers := []string{"10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"}
	first := map[string]int{}
	for i := range 30 {
		node := fmt.Sprintf("node-%d", i)
		got := spread(servers, node)
		if !slices.Equal(got, spread(servers, node)) {
			t.Fatalf("%s: two orders", node)
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), servers) {
			t.Fatalf("%s: %v is not a rotation of %v", node, got, servers)
		}
		first[got[0]]++
	}
	if len(first) != len(servers) {
		t.Errorf("30 nodes put first only %v", first)
	}
	if got := spread(nil, "n"); len(got) != 0 {
		t.Errorf("spread(nil) = %v", got)
	}
}
