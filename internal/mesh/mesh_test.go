package mesh

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// fakeWorld is a World from lists.
type fakeWorld struct {
	pods       []*corev1.Pod
	namespaces []*corev1.Namespace
	services   []*corev1.Service
	slices     []*discoveryv1.EndpointSlice
}

func (w *fakeWorld) PodByIP(a netip.Addr) *corev1.Pod {
	for _, p := range w.pods {
		if p.Status.PodIP == a.String() {
			return p
		}
	}
	return nil
}

func (w *fakeWorld) Namespace(name string) *corev1.Namespace {
	for _, n := range w.namespaces {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (w *fakeWorld) ServiceByIP(a netip.Addr) *corev1.Service {
	for _, s := range w.services {
		if s.Spec.ClusterIP == a.String() {
			return s
		}
	}
	return nil
}

func (w *fakeWorld) EndpointSlices(ns, name string) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, s := range w.slices {
		if s.Namespace == ns && s.Labels[discoveryv1.LabelServiceName] == name {
			out = append(out, s)
		}
	}
	return out
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pod(nsName, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "a", ServiceAccountName: "web"},
		Status:     corev1.PodStatus{PodIP: ip, HostIP: "192.168.1.1", Phase: corev1.PodRunning},
	}
}

func TestEnrolled(t *testing.T) {
	on := ns("on", map[string]string{EnabledLabel: "true"})
	off := ns("off", nil)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ns   *corev1.Namespace
		want bool
	}{
		{"namespace enrolled", pod("on", "p", "10.42.0.5", nil), on, true},
		{"pod opts out", pod("on", "p", "10.42.0.5", map[string]string{EnabledLabel: "false"}), on, false},
		{"pod opts in", pod("off", "p", "10.42.0.5", map[string]string{EnabledLabel: "true"}), off, true},
		{"neither", pod("off", "p", "10.42.0.5", nil), off, false},
		{"no address yet", pod("on", "p", "", nil), on, false},
		{"host network", func() *corev1.Pod { p := pod("on", "p", "192.168.1.1", nil); p.Spec.HostNetwork = true; return p }(), on, false},
		{"finished", func() *corev1.Pod {
			p := pod("on", "p", "10.42.0.5", nil)
			p.Status.Phase = corev1.PodSucceeded
			return p
		}(), on, false},
		{"unknown namespace", pod("on", "p", "10.42.0.5", nil), nil, false},
	} {
		if got := Enrolled(tc.pod, tc.ns); got != tc.want {
			t.Errorf("%s: Enrolled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWorkload(t *testing.T) {
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		p := pod("d", "x-1", "10.42.0.5", labels)
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr.To(true)}}
		return p
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{owned("ReplicaSet", "web-7d9f8c", map[string]string{"pod-template-hash": "7d9f8c"}), "web"},
		{owned("ReplicaSet", "bare-rs", nil), "bare-rs"},
		{owned("StatefulSet", "db", nil), "db"},
		{owned("Job", "nightly-29000000", map[string]string{"batch.kubernetes.io/cronjob-name": "nightly"}), "nightly"},
		{pod("d", "lonely", "10.42.0.5", nil), "lonely"},
	} {
		if got := Workload(tc.pod); got != tc.want {
			t.Errorf("Workload(%v) = %q, want %q", tc.pod.OwnerReferences, got, tc.want)
		}
	}
}

func TestServerNameRoundTrip(t *testing.T) {
	for _, id := range []Identity{{"default", "web"}, {"shop", "my.dotted.sa"}} {
		got, ok := ParseServerName(id.ServerName())
		if !ok || got != id {
			t.Errorf("ParseServerName(%q) = %v, %v; want %v", id.ServerName(), got, ok, id)
		}
	}
	for _, bad := range []string{"", "web.default", "web.default.svc.cluster.local", ".default.sa.mesh.skiff", "web..sa.mesh.skiff"} {
		if id, ok := ParseServerName(bad); ok {
			t.Errorf("ParseServerName(%q) = %v, want refusal", bad, id)
		}
	}
}

func TestRoute(t *testing.T) {
	on := ns("shop", map[string]string{EnabledLabel: "true"})
	plain := ns("legacy", nil)
	web := pod("shop", "web-1", "10.42.1.7", nil)
	old := pod("legacy", "old-1", "10.42.1.8", nil)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.43.0.20", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-x", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.1.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
			{Addresses: []string{"10.42.1.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Terminating: ptr.To(true)}},
			{Addresses: []string{"10.42.1.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		},
	}
	empty := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "empty"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.43.0.21", Ports: []corev1.ServicePort{{Port: 80}}},
	}
	w := &fakeWorld{pods: []*corev1.Pod{web, old}, namespaces: []*corev1.Namespace{on, plain}, services: []*corev1.Service{svc, empty}, slices: []*discoveryv1.EndpointSlice{slice}}
	first := func(int) int { return 0 }
	for _, tc := range []struct {
		dst      string
		wantAddr string
		wantMesh bool
		wantPod  string
		wantErr  string
	}{
		{dst: "10.43.0.20:80", wantAddr: "10.42.1.7:8080", wantMesh: true, wantPod: "web-1"},
		{dst: "10.42.1.7:8080", wantAddr: "10.42.1.7:8080", wantMesh: true, wantPod: "web-1"},
		{dst: "10.42.1.8:80", wantAddr: "10.42.1.8:80", wantPod: "old-1"},
		{dst: "1.1.1.1:443", wantAddr: "1.1.1.1:443"},
		{dst: "10.43.0.20:81", wantErr: "no TCP port 81"},
		{dst: "10.43.0.21:80", wantErr: "no ready endpoints"},
	} {
		d, err := Route(w, netip.MustParseAddrPort(tc.dst), first)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Route(%s) error = %v, want %q", tc.dst, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Route(%s): %v", tc.dst, err)
			continue
		}
		podName := ""
		if d.Pod != nil {
			podName = d.Pod.Name
		}
		if d.Addr.String() != tc.wantAddr || d.Mesh != tc.wantMesh || podName != tc.wantPod {
			t.Errorf("Route(%s) = %s mesh=%v pod=%q; want %s mesh=%v pod=%q", tc.dst, d.Addr, d.Mesh, podName, tc.wantAddr, tc.wantMesh, tc.wantPod)
		}
	}
}

func TestRenderCapture(t *testing.T) {
	nft := knftables.NewFake(knftables.IPv4Family, Table)
	objs := RenderCapture([]netip.Addr{netip.MustParseAddr("10.42.0.9"), netip.MustParseAddr("10.42.0.5"), netip.MustParseAddr("10.42.0.9")}, OutboundPort, InboundPlaintextPort)
	if err := applyCapture(t.Context(), nft, objs); err != nil {
		t.Fatal(err)
	}
	// Applying a smaller set replaces the elements.
	if err := applyCapture(t.Context(), nft, RenderCapture([]netip.Addr{netip.MustParseAddr("10.42.0.5")}, OutboundPort, InboundPlaintextPort)); err != nil {
		t.Fatal(err)
	}
	got := nft.Dump()
	for _, want := range []string{
		"add chain ip skiff-mesh prerouting { type nat hook prerouting priority -110 ; }",
		"ip saddr @enrolled meta l4proto tcp redirect to :15001",
		"ip daddr @enrolled meta l4proto tcp redirect to :15006",
		"add element ip skiff-mesh enrolled { 10.42.0.5 }",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.42.0.9") || strings.Count(got, "redirect") != 2 {
		t.Errorf("stale rules or elements after the second apply:\n%s", got)
	}
}

func TestForwardedFor(t *testing.T) {
	for h, want := range map[string]string{`for="10.42.0.5"`: "10.42.0.5", `proto=https;for=10.42.0.6`: "10.42.0.6", ``: "invalid IP", `for=x`: "invalid IP"} {
		if got := forwardedFor(h).String(); got != want {
			t.Errorf("forwardedFor(%q) = %s, want %s", h, got, want)
		}
	}
}
