package ingresslb

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, ip, ports string, ready bool) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		},
	}
	if ports != "" {
		n.Annotations = map[string]string{NodePortsAnnotation: ports}
	}
	return n
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in          string
		http, https int32
		ok          bool
	}{
		{FormatPorts(80, 443), 80, 443, true},
		{"8080,8443", 8080, 8443, true},
		{"80", 0, 0, false},
		{"80,", 0, 0, false},
		{"0,443", 0, 0, false},
		{"80,70000", 0, 0, false},
		{"-1,443", 0, 0, false},
		{"", 0, 0, false},
	} {
		http, https, ok := ParsePorts(tc.in)
		if http != tc.http || https != tc.https || ok != tc.ok {
			t.Errorf("ParsePorts(%q) = %d, %d, %v; want %d, %d, %v", tc.in, http, https, ok, tc.http, tc.https, tc.ok)
		}
	}
}

func TestServiceAndSlices(t *testing.T) {
	nodes := []*corev1.Node{
		node("c", "10.0.0.3", "8080,8443", true),
		node("a", "10.0.0.1", "8080,8443", true),
		node("b", "10.0.0.2", "80,443", false),
		node("plain", "10.0.0.4", "", true),      // no proxy
		node("v6", "fd00::5", "8080,8443", true), // no IPv4 InternalIP
		node("bad", "10.0.0.6", "http", true),    // malformed announcement
	}
	proxies := Proxies(nodes)
	if len(proxies) != 3 || proxies[0].Node != "a" || proxies[1].Node != "b" || proxies[2].Node != "c" {
		t.Fatalf("Proxies = %+v, want a, b, c", proxies)
	}
	svc := Service(proxies)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts || svc.Spec.Selector != nil {
		t.Errorf("Service spec = %+v, want a selector-less LoadBalancer, policy Local, no node ports", svc.Spec)
	}
	// Two of three proxies serve 8080 and 8443: the Service takes those.
	if got := []int32{svc.Spec.Ports[0].Port, svc.Spec.Ports[1].Port}; !reflect.DeepEqual(got, []int32{8080, 8443}) ||
		svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[1].Name != "https" {
		t.Errorf("Service ports = %+v, want http 8080 and https 8443", svc.Spec.Ports)
	}
	if got := Service(nil).Spec.Ports; got[0].Port != 80 || got[1].Port != 443 {
		t.Errorf("Service ports without proxies = %+v, want 80 and 443", got)
	}

	svc.UID = "uid-1"
	got := Slices(svc, proxies)
	if len(got) != 2 || got[0].Name != "skiff-ingress-80-443" || got[1].Name != "skiff-ingress-8080-8443" {
		t.Fatalf("slices %v, want one per port pair", names(got))
	}
	b, ac := got[0], got[1]
	if len(b.Endpoints) != 1 || *b.Endpoints[0].NodeName != "b" || *b.Endpoints[0].Conditions.Ready {
		t.Errorf("slice %s endpoints = %+v, want node b, not ready", b.Name, b.Endpoints)
	}
	if len(ac.Endpoints) != 2 || ac.Endpoints[0].Addresses[0] != "10.0.0.1" || *ac.Endpoints[1].NodeName != "c" || !*ac.Endpoints[1].Conditions.Ready {
		t.Errorf("slice %s endpoints = %+v, want a and c, ready", ac.Name, ac.Endpoints)
	}
	if *ac.Ports[0].Name != "http" || *ac.Ports[0].Port != 8080 || *ac.Ports[1].Name != "https" || *ac.Ports[1].Port != 8443 {
		t.Errorf("slice %s ports = %+v", ac.Name, ac.Ports)
	}
	if ac.Labels[discoveryv1.LabelServiceName] != ServiceName || ac.Labels[discoveryv1.LabelManagedBy] != ManagedBy ||
		len(ac.OwnerReferences) != 1 || ac.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("slice %s labels %v owners %+v", ac.Name, ac.Labels, ac.OwnerReferences)
	}
}

func names(s []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Name)
	}
	return out
}

// TestRun drives the controller over a fake API: it creates the Service and
// slices, follows node changes, keeps an administrator's changes to the
// Service and mends its ports.
func TestRun(t *testing.T) {
	client := fake.NewClientset(node("a", "10.0.0.1", "80,443", true), node("b", "10.0.0.2", "80,443", true))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	reg := prometheus.NewRegistry()
	c, err := New(client, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(client, slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatalf("a second controller on the same registry: %v", err)
	}
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	slice := func() *discoveryv1.EndpointSlice {
		s, err := client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, "skiff-ingress-80-443", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return s
	}
	readyNodes := func() []string {
		var out []string
		if s := slice(); s != nil {
			for _, e := range s.Endpoints {
				if *e.Conditions.Ready {
					out = append(out, *e.NodeName)
				}
			}
		}
		return out
	}
	waitFor("the Service", func() bool {
		_, err := client.CoreV1().Services(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
		return err == nil
	})
	waitFor("endpoints a and b", func() bool { return reflect.DeepEqual(readyNodes(), []string{"a", "b"}) })
	if n := testutil.ToFloat64(c.metrics.syncs.WithLabelValues("success")); n < 1 {
		t.Errorf("skiff_controller_syncs_total{result=success} = %v after syncing, want at least 1", n)
	}

	// b goes NotReady; a drops its proxy.
	b := node("b", "10.0.0.2", "80,443", false)
	if _, err := client.CoreV1().Nodes().Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("b not ready", func() bool { return reflect.DeepEqual(readyNodes(), []string{"a"}) })
	if _, err := client.CoreV1().Nodes().Update(ctx, node("a", "10.0.0.1", "", true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("a gone", func() bool { s := slice(); return s != nil && len(s.Endpoints) == 1 })

	// An administrator annotates the Service and changes a port: the
	// annotation stays, the port comes back.
	svc, err := client.CoreV1().Services(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Annotations = map[string]string{"example.com/owner": "ops"}
	svc.Spec.Ports[0].Port = 81
	if _, err := client.CoreV1().Services(Namespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("port 80 back, annotation kept", func() bool {
		s, err := client.CoreV1().Services(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
		return err == nil && s.Spec.Ports[0].Port == 80 && s.Annotations["example.com/owner"] == "ops"
	})

	// The last proxy goes: its slice is deleted.
	if err := client.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the slice deleted", func() bool { return slice() == nil })
}
