package server

import (
	"context"
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPublishDNS(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	ip := net.ParseIP("192.0.2.10")
	// Twice: the second start changes nothing.
	for range 2 {
		if err := dnsService("10.43.0.10", 10053).publish(ctx, client, ip, "Node-A"); err != nil {
			t.Fatal(err)
		}
	}
	// A second server over the same datastore adds its own slice.
	if err := dnsService("10.43.0.10", 10053).publish(ctx, client, net.ParseIP("192.0.2.11"), "node-b"); err != nil {
		t.Fatal(err)
	}

	svc, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Labels["k8s-app"] != "kube-dns" || svc.Labels["kubernetes.io/name"] != "KubeDNS" {
		t.Errorf("labels %v", svc.Labels)
	}
	if svc.Spec.ClusterIP != "10.43.0.10" || svc.Spec.Selector != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("spec %+v", svc.Spec)
	}
	if len(svc.Spec.Ports) != 2 {
		t.Fatalf("ports %+v", svc.Spec.Ports)
	}
	for i, want := range []struct {
		name  string
		proto corev1.Protocol
	}{{"dns", corev1.ProtocolUDP}, {"dns-tcp", corev1.ProtocolTCP}} {
		p := svc.Spec.Ports[i]
		if p.Name != want.name || p.Protocol != want.proto || p.Port != 53 || p.TargetPort.IntValue() != 10053 {
			t.Errorf("port %d: %+v", i, p)
		}
	}

	slices, err := client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]discoveryv1.EndpointSlice{}
	for _, s := range slices.Items {
		byName[s.Name] = s
	}
	if len(byName) != 2 {
		t.Fatalf("slices %v, want kube-dns-node-a and kube-dns-node-b", byName)
	}
	for name, addr := range map[string]string{"kube-dns-node-a": "192.0.2.10", "kube-dns-node-b": "192.0.2.11"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no slice %s", name)
			continue
		}
		if s.Labels[discoveryv1.LabelServiceName] != "kube-dns" || s.Labels[discoveryv1.LabelManagedBy] != serverEndpointsManagedBy {
			t.Errorf("%s labels %v", name, s.Labels)
		}
		if s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Endpoints) != 1 || len(s.Endpoints[0].Addresses) != 1 ||
			s.Endpoints[0].Addresses[0] != addr || s.Endpoints[0].Conditions.Ready == nil || !*s.Endpoints[0].Conditions.Ready {
			t.Errorf("%s endpoints %+v", name, s.Endpoints)
		}
		if len(s.Ports) != 2 || *s.Ports[0].Name != "dns" || *s.Ports[0].Protocol != corev1.ProtocolUDP || *s.Ports[0].Port != 10053 ||
			*s.Ports[1].Name != "dns-tcp" || *s.Ports[1].Protocol != corev1.ProtocolTCP || *s.Ports[1].Port != 10053 {
			t.Errorf("%s ports %+v", name, s.Ports)
		}
	}

	// A new address replaces the old one in the server's own slice.
	if err := dnsService("10.43.0.10", 10053).publish(ctx, client, net.ParseIP("192.0.2.20"), "node-a"); err != nil {
		t.Fatal(err)
	}
	s, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "192.0.2.20" {
		t.Errorf("endpoints after the address changed: %+v", s.Endpoints)
	}
}

func TestSliceName(t *testing.T) {
	for host, want := range map[string]string{
		"node-a":             "kube-dns-node-a",
		"Node_A.example.com": "kube-dns-node-a.example.com",
		"":                   "kube-dns-localhost",
		"-x-":                "kube-dns-x",
	} {
		if got := sliceName(dnsServiceName, host); got != want {
			t.Errorf("sliceName(kube-dns, %q) = %q, want %q", host, got, want)
		}
	}
}
