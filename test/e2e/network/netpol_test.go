package network

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNetworkPolicy checks NetworkPolicy enforcement (internal/agent/netpol)
// across nodes and on one node's bridge: default-deny ingress, an allow by
// pod label through a named port, and egress limited to DNS.
func TestNetworkPolicy(t *testing.T) {
	ns := namespace(t)
	web := spreadDeployment(t, ns, "web", 1)[0]
	webNode := web.Spec.NodeName
	otherNode := ""
	for i := 1; i <= 3; i++ {
		if n := fmt.Sprintf("skiff-n%d", i); n != webNode {
			otherNode = n
			break
		}
	}
	// client (role=client) on another node; stranger (no label) on web's
	// own node, so its traffic crosses only the bridge.
	clientPod := testPod(t, ns, "client", otherNode, map[string]string{"role": "client"})
	stranger := testPod(t, ns, "stranger", webNode, nil)
	url := "http://" + web.Status.PodIP + ":8080/hostname"
	reaches := func(pod string) bool {
		_, err := inPod(t, ns, pod, "timeout 3 wget -qO- "+url)
		return err == nil
	}
	for _, p := range []string{clientPod, stranger} {
		eventually(t, 30*time.Second, p+" reaches web before any policy", func() bool { return reaches(p) })
	}

	// Default deny ingress for app=web.
	createPolicy(t, ns, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-web"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	})
	for _, p := range []string{clientPod, stranger} {
		eventually(t, 30*time.Second, p+" blocked by default-deny", func() bool { return !reaches(p) })
	}
	// The kubelet's probes come from the node and still pass: web stays Ready.
	time.Sleep(3 * time.Second)
	if !podReady(t, ns, web.Name) {
		t.Errorf("web %s lost readiness under default-deny ingress: probes from the node are blocked", web.Name)
	}

	// Allow from role=client, to the port named "http".
	httpPort := intstr.FromString("http")
	createPolicy(t, ns, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web-from-clients"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &httpPort}},
			}},
		},
	})
	eventually(t, 30*time.Second, "client allowed by role=client", func() bool { return reaches(clientPod) })
	for range 3 {
		if reaches(stranger) {
			t.Fatalf("%s (no role=client, same node as web) reached web", stranger)
		}
	}

	// Egress for role=client: DNS only.
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns := intstr.FromInt32(53)
	createPolicy(t, ns, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "clients-dns-only"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}},
			}},
		},
	})
	eventually(t, 30*time.Second, "client's HTTP blocked by its egress policy", func() bool { return !reaches(clientPod) })

	// Removing the policies opens everything again (the rules follow the
	// cluster's state both ways).
	for _, name := range []string{"clients-dns-only", "web-from-clients", "deny-web"} {
		if err := client.NetworkingV1().NetworkPolicies(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{clientPod, stranger} {
		eventually(t, 30*time.Second, p+" reaches web after the policies are gone", func() bool { return reaches(p) })
	}
}

func createPolicy(t *testing.T, ns string, p *networkingv1.NetworkPolicy) {
	t.Helper()
	if _, err := client.NetworkingV1().NetworkPolicies(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create NetworkPolicy %s: %v", p.Name, err)
	}
}

// testPod runs a testhost netexec pod on node and waits until it runs.
func testPod(t *testing.T, ns, name, node string, labels map[string]string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "c", Image: "localhost/skiff/testhost:latest", Args: []string{"netexec"},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, name+" running", func() bool {
		p, err := client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
	})
	return name
}

func podReady(t *testing.T, ns, name string) bool {
	t.Helper()
	p, err := client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
