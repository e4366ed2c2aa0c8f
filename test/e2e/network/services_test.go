package network

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Service behaviours beyond spreading: session affinity, hairpin, traffic
// policies, UDP.

// onNode pins a pod to a node by its hostname label (the scheduler still
// places it, unlike spec.nodeName).
func onNode(node string) func(*corev1.PodSpec) {
	return func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{corev1.LabelHostname: node} }
}

// netexecPod runs testhost netexec (HTTP 8080, UDP 8081) with a readiness
// probe, labelled app=app, shaped by mutate.
func netexecPod(t *testing.T, ns, name, app string, mutate func(*corev1.PodSpec)) {
	t.Helper()
	createPod(t, ns, name, map[string]string{"app": app}, func(s *corev1.PodSpec) {
		s.Containers[0].Args = []string{"netexec"}
		s.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		}
		if mutate != nil {
			mutate(s)
		}
	})
}

func waitReady(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 2*time.Minute, name+" ready", func() bool {
		var err error
		if pod, err = client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	return pod
}

func createService(t *testing.T, ns string, svc *corev1.Service) *corev1.Service {
	t.Helper()
	got, err := client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// nftOn lists an nftables object on node skiff-nI.
func nftOn(t *testing.T, i int, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/var/run/netns/skiff-n%d", i), "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Logf("nft %v on skiff-n%d: %v: %s", args, i, err, out)
	}
	return string(out)
}

// With sessionAffinity ClientIP every request of one client reaches the
// same endpoint; the affinity timeout reaches the dataplane.
func TestSessionAffinityPins(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "sticky", 3)
	timeout := int32(60)
	svc := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sticky"},
		Spec: corev1.ServiceSpec{
			Selector:              map[string]string{"app": "sticky"},
			Ports:                 []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			SessionAffinity:       corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}},
		},
	})
	url := "http://" + svc.Spec.ClusterIP + "/hostname"
	for _, from := range pods[:2] {
		var seen map[string]int
		eventually(t, time.Minute, "answers through the ClusterIP from "+from.Name, func() bool {
			seen = hostnames(t, ns, from.Name, url, 3)
			return seen[""] == 0
		})
		seen = hostnames(t, ns, from.Name, url, 20)
		if len(seen) != 1 || seen[""] > 0 {
			t.Errorf("from %s: answers %v, want every request at one pod", from.Name, seen)
		}
	}
	// kube-proxy keeps the client addresses in a set whose elements time out
	// after timeoutSeconds.
	if out := nftOn(t, 1, "list", "table", "ip", "kube-proxy"); !strings.Contains(out, "timeout 1m") {
		t.Errorf("no affinity set with a 60 s timeout in skiff-n1's kube-proxy table")
	}
}

// A pod reaches itself through its own Service (hairpin), by ClusterIP and
// by name.
func TestHairpin(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "hairpin", 1)
	svc := service(t, ns, "hairpin", corev1.ServiceTypeClusterIP)
	for _, url := range []string{"http://" + svc.Spec.ClusterIP + "/hostname", "http://hairpin/hostname"} {
		eventually(t, time.Minute, "hairpin to "+url, func() bool {
			seen := hostnames(t, ns, pods[0].Name, url, 3)
			return seen[pods[0].Name] == 3
		})
	}
}

// externalTrafficPolicy Local: a NodePort answers only on nodes with a
// local endpoint, keeps the client's source address, and the health check
// port says which nodes those are. internalTrafficPolicy Local: a ClusterIP
// reaches only endpoints on the client's node.
func TestTrafficPolicyLocal(t *testing.T) {
	ns := namespace(t)
	netexecPod(t, ns, "local-ep", "local", onNode("skiff-n2"))
	createPod(t, ns, "client-n1", nil, onNode("skiff-n1"))
	createPod(t, ns, "client-n2", nil, onNode("skiff-n2"))
	ports := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}
	ext := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "etp"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "local"}, Ports: ports,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		},
	})
	local := corev1.ServiceInternalTrafficPolicyLocal
	itp := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "itp"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "local"}, Ports: ports, InternalTrafficPolicy: &local},
	})
	if ext.Spec.HealthCheckNodePort == 0 {
		t.Fatalf("LoadBalancer with externalTrafficPolicy Local got no healthCheckNodePort")
	}
	ep := waitReady(t, ns, "local-ep")
	waitRunning(t, ns, "client-n1")
	waitRunning(t, ns, "client-n2")

	curl := func(url string) (string, error) {
		out, err := exec.Command("curl", "-s", "-m", "2", url).Output()
		return string(out), err
	}
	nodePort := ext.Spec.Ports[0].NodePort
	// The node with the endpoint answers, and the pod sees the host's own
	// address (172.31.250.1 on the node network), not a node's.
	eventually(t, time.Minute, "NodePort on skiff-n2", func() bool {
		out, err := curl(fmt.Sprintf("http://%s.12:%d/hostname", nodeSubnet, nodePort))
		return err == nil && out == ep.Name
	})
	if out, err := curl(fmt.Sprintf("http://%s.12:%d/clientip", nodeSubnet, nodePort)); err != nil || !strings.HasPrefix(out, nodeSubnet+".1:") {
		t.Errorf("client address seen through a Local NodePort = %q (err %v), want %s.1:port", out, err, nodeSubnet)
	}
	// A node without one drops the traffic.
	if out, err := curl(fmt.Sprintf("http://%s.11:%d/hostname", nodeSubnet, nodePort)); err == nil {
		t.Errorf("NodePort on skiff-n1 (no local endpoint) answered %q", out)
	}
	// kube-proxy's health check: 200 where the endpoint is, 503 elsewhere
	// (each node's kube-proxy serves it once it has synced the Service).
	for i, want := range map[int]string{1: "503", 2: "200", 3: "503"} {
		var code string
		eventually(t, 30*time.Second, fmt.Sprintf("health check node port on skiff-n%d: HTTP %s", i, want), func() bool {
			out, _ := exec.Command("curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}",
				fmt.Sprintf("http://%s.%d:%d/", nodeSubnet, 10+i, ext.Spec.HealthCheckNodePort)).Output()
			code = string(out)
			return code == want
		})
	}

	url := "http://" + itp.Spec.ClusterIP + "/hostname"
	eventually(t, time.Minute, "internalTrafficPolicy Local from the endpoint's node", func() bool {
		return hostnames(t, ns, "client-n2", url, 3)[ep.Name] == 3
	})
	if seen := hostnames(t, ns, "client-n1", url, 2); seen[""] != 2 {
		t.Errorf("internalTrafficPolicy Local from a node without an endpoint: answers %v, want none", seen)
	}
}

// UDP through a ClusterIP: when the endpoint a client's flow is pinned to
// goes away, kube-proxy flushes that conntrack entry, so the client's next
// datagrams (same source port, same 5-tuple) reach the new endpoint instead
// of the old address for as long as the client keeps sending.
func TestUDPServiceFlushesStaleConntrack(t *testing.T) {
	ns := namespace(t)
	netexecPod(t, ns, "udp-a", "udp", onNode("skiff-n2"))
	svc := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "udp"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "udp"},
			Ports:    []corev1.ServicePort{{Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(8081)}},
		},
	})
	waitReady(t, ns, "udp-a")
	// One socket, one source port, a datagram every 200 ms for at most two
	// minutes; the pod's log is the answers.
	createPod(t, ns, "udp-client", nil, func(s *corev1.PodSpec) {
		s.NodeSelector = map[string]string{corev1.LabelHostname: "skiff-n1"}
		s.RestartPolicy = corev1.RestartPolicyNever
		s.Containers[0].Args = []string{"udp-client", "--to", svc.Spec.ClusterIP + ":53", "--source-port", "40000", "--count", "600"}
	})
	answers := func() []string {
		l, _ := podLog(ns, "udp-client") // no log before it starts
		return l
	}
	eventually(t, time.Minute, "udp-a answering", func() bool {
		l := answers()
		return len(l) > 0 && l[len(l)-1] == "udp-a"
	})
	// The new endpoint is ready before the old one goes: the Service is
	// never without endpoints, so only a flush moves the flow.
	netexecPod(t, ns, "udp-b", "udp", onNode("skiff-n3"))
	waitReady(t, ns, "udp-b")
	if err := client.CoreV1().Pods(ns).Delete(context.Background(), "udp-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	eventually(t, 30*time.Second, "the flow moving to udp-b", func() bool {
		l := answers()
		return len(l) > 0 && l[len(l)-1] == "udp-b"
	})
	t.Logf("udp-b answering %s after udp-a was deleted", time.Since(deleted).Round(100*time.Millisecond))
}
