package upstream

import (
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiffdev/skiff/internal/fleet"
)

func exportOf(cluster string, age time.Duration, ports, ip string, port int32) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "shop.cart", Namespace: fleet.ExecutionNamespace(cluster),
			CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age)),
			Labels:            map[string]string{"multicluster.kubernetes.io/source-cluster": cluster},
			Annotations:       map[string]string{fleet.AnnotationServicePorts: ports, fleet.AnnotationSessionAffinity: "None"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(port)}},
	}
}

func TestImportManifests(t *testing.T) {
	exports := []*discoveryv1.EndpointSlice{
		// Younger, and defines "http" differently: the older export wins.
		exportOf("b", time.Minute, `[{"name":"http","protocol":"TCP","port":8080},{"name":"metrics","protocol":"TCP","port":9090}]`, "172.31.251.12", 30002),
		exportOf("a", time.Hour, `[{"name":"http","protocol":"TCP","port":80}]`, "172.31.251.11", 30001),
		exportOf("c", 2*time.Hour, `[{"name":"http","protocol":"TCP","port":80}]`, "172.31.251.13", 30003),
	}
	objs, err := importManifests("shop", "cart", exports, map[string]bool{"a": true, "b": true, "d": true}, "d")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 5 {
		t.Fatalf("%d objects, want ServiceImport, Service and 3 slices", len(objs))
	}
	// The member's own export is its agent's to add.
	if own, _ := importManifests("shop", "cart", exports, map[string]bool{"a": true}, "a"); len(own) != 4 {
		t.Errorf("%d objects for member a, want its own slice left out", len(own))
	}
	imp, svc := objs[0], objs[1]
	if imp.GetKind() != "ServiceImport" || imp.GetAPIVersion() != "multicluster.x-k8s.io/v1beta1" || imp.GetName() != "cart" || imp.GetNamespace() != "shop" {
		t.Errorf("first object: %s %s %s/%s", imp.GetAPIVersion(), imp.GetKind(), imp.GetNamespace(), imp.GetName())
	}
	ports, _, _ := unstructured.NestedSlice(imp.Object, "spec", "ports")
	if len(ports) != 2 || ports[0].(map[string]any)["port"] != int64(80) || ports[1].(map[string]any)["name"] != "metrics" {
		t.Errorf("import ports %v: want http 80 (the oldest export's) and metrics", ports)
	}
	if svc.GetKind() != "Service" || svc.GetName() != "derived-cart" || svc.GetLabels()["multicluster.kubernetes.io/service-name"] != "cart" {
		t.Errorf("derived service: %s %s labels %v", svc.GetKind(), svc.GetName(), svc.GetLabels())
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(svc.Object, "spec", "selector"); found {
		t.Error("the derived service has a selector")
	}
	wantEndpoints := map[string]int{"derived-cart-a": 1, "derived-cart-b": 1, "derived-cart-c": 0}
	for _, s := range objs[2:] {
		eps, _, _ := unstructured.NestedSlice(s.Object, "endpoints")
		want, ok := wantEndpoints[s.GetName()]
		if !ok || len(eps) != want {
			t.Errorf("slice %s: %d endpoints, want %d (cluster c is not Ready)", s.GetName(), len(eps), want)
		}
		if s.GetLabels()["kubernetes.io/service-name"] != "derived-cart" || s.GetLabels()["endpointslice.kubernetes.io/managed-by"] != fleet.ManagedByMCS {
			t.Errorf("slice %s labels %v", s.GetName(), s.GetLabels())
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(s.Object, "metadata", "creationTimestamp"); found {
			t.Errorf("slice %s carries a creationTimestamp", s.GetName())
		}
	}
	if _, err := importManifests("shop", "cart", []*discoveryv1.EndpointSlice{exportOf("a", 0, "{", "1.2.3.4", 1)}, nil, "b"); err == nil {
		t.Error("a malformed ports annotation was accepted")
	}
}

func TestMCSNames(t *testing.T) {
	if ns, name, ok := fleet.ParseImportWorkName(fleet.ImportWorkName("shop", "cart")); !ok || ns != "shop" || name != "cart" {
		t.Errorf("round trip: %q %q %v", ns, name, ok)
	}
	long := "a123456789b123456789c123456789d123456789e123456789f123456789"
	if n := fleet.DerivedServiceName(long); len(n) > 63 || n == fleet.DerivedServiceName(long+"x") {
		t.Errorf("derived name of a long service: %q", n)
	}
}
