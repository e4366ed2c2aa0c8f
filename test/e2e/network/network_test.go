// Package network tests the pod network, Services and cluster DNS on a
// three-node cluster whose nodes are network namespaces joined by a bridge
// (scripts/netns-cluster.sh), so traffic between pods really crosses hosts.
package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/freeport"
)

var (
	kubeconfig string
	client     kubernetes.Interface
	skiffBin   string
	// clusterDir and serverPort are netns-cluster.sh's DIR and PORT: the
	// fault tests restart agents as the script starts them.
	clusterDir string
	serverPort int
)

const nodeSubnet = "172.31.250"

// gatewayPool is the cluster's --gateway-address-pool: each Gateway gets an
// address of it, routed from the host to node 1.
const gatewayPool = "172.31.251.0/24"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("skip: network namespaces need root")
		return 0
	}
	for _, tool := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("skip: %s not installed\n", tool)
			return 0
		}
	}
	skiffBin = os.Getenv("SKIFF_BIN")
	if skiffBin == "" {
		fmt.Println("SKIFF_BIN is not set: build bin/skiff with `make build` and set SKIFF_BIN")
		return 1
	}
	dir, err := os.MkdirTemp("", "skiff-netns-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	script := filepath.Join(repoRoot(), "scripts", "netns-cluster.sh")
	down := func() {
		cmd := exec.Command(script, "down", dir)
		cmd.Env = append(os.Environ(), "SKIFF_BIN="+skiffBin)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("netns-cluster down: %v\n%s\n", err, out)
		}
		os.RemoveAll(dir)
	}
	down() // a run killed earlier may have left namespaces behind
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Println(err)
		return 1
	}
	port, err := freeport.Pick()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	clusterDir, serverPort = dir, port
	// The cluster DNS forwards names outside the cluster to a stub resolver
	// of the test's own on loopback, never to the host's resolvers.
	stopStub, err := startStubResolver()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer stopStub()
	up := exec.Command(script, "up", dir, "3", fmt.Sprint(port))
	up.Env = append(os.Environ(), "SKIFF_BIN="+skiffBin, "SERVER_ARGS=--dns-upstream "+stubAddr+" --gateway-address-pool "+gatewayPool+" --gateway-api-channel experimental")
	out, err := up.CombinedOutput()
	if err != nil {
		fmt.Printf("netns-cluster up: %v\n%s\n", err, out)
		for _, log := range []string{"server.log", "n1.log"} {
			if data, err := os.ReadFile(filepath.Join(dir, log)); err == nil {
				lines := strings.Split(string(data), "\n")
				fmt.Printf("--- tail of %s\n%s\n", log, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
		down()
		return 1
	}
	defer down()
	// Gateways' own addresses are routed to node 1, as a network would
	// route the pool to the nodes.
	if out, err := exec.Command("ip", "route", "replace", gatewayPool, "via", nodeSubnet+".11").CombinedOutput(); err != nil {
		fmt.Printf("route the gateway address pool: %v\n%s\n", err, out)
		return 1
	}
	defer exec.Command("ip", "route", "del", gatewayPool).Run()
	kubeconfig = filepath.Join(dir, "server", "kubeconfig.yaml")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if client, err = kubernetes.NewForConfig(rc); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "..")
}

// kubectl runs the embedded kubectl against the cluster.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, append([]string{"kubectl", "--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// inPod runs a shell command in a pod and returns its output.
func inPod(t *testing.T, ns, pod, script string) (string, error) {
	t.Helper()
	return kubectl(t, "exec", "-n", ns, pod, "--", "sh", "-c", script)
}

func namespace(t *testing.T) string {
	t.Helper()
	ns, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "net-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// spreadDeployment runs n testhost netexec pods, one per node, and waits
// until all are ready; it returns them. mutate shapes the pod template.
func spreadDeployment(t *testing.T, ns, name string, n int32, mutate ...func(*corev1.PodSpec)) []corev1.Pod {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
					Containers: []corev1.Container{{
						Name: "web", Image: "localhost/skiff/testhost:latest", Args: []string{"netexec"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1, FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}
	for _, m := range mutate {
		m(&d.Spec.Template.Spec)
	}
	if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	eventually(t, 3*time.Minute, "pods ready", func() bool {
		list, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false
		}
		ready := 0
		for _, p := range list.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		pods = list.Items
		return ready == int(n) && len(list.Items) == int(n)
	})
	return pods
}

func service(t *testing.T, ns, name string, typ corev1.ServiceType) *corev1.Service {
	t.Helper()
	return createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	})
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// hostnames fetches url n times from inside pod and counts the answers by
// pod name; failed requests count under "".
func hostnames(t *testing.T, ns, pod, url string, n int) map[string]int {
	t.Helper()
	out, err := inPod(t, ns, pod, fmt.Sprintf(`for i in $(seq %d); do timeout 3 wget -qO- %s 2>/dev/null || echo; echo; done`, n, url))
	if err != nil {
		t.Fatalf("requests from %s to %s: %v\n%s", pod, url, err, out)
	}
	seen := map[string]int{}
	answers := 0
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			seen[line]++
			answers++
		}
	}
	if failed := n - answers; failed > 0 {
		seen[""] = failed
	}
	return seen
}

func TestPodToPodAcrossNodes(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "p2p", 3)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("pods are on %d nodes, want 3 (topology spread)", len(nodes))
	}
	for _, from := range pods {
		for _, to := range pods {
			out, err := inPod(t, ns, from.Name, "timeout 5 wget -qO- http://"+to.Status.PodIP+":8080/hostname")
			if err != nil || strings.TrimSpace(out) != to.Name {
				t.Errorf("%s (%s) -> %s (%s, %s): got %q, err %v", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName, to.Status.PodIP, out, err)
			}
		}
		// The peer sees the pod's own address: no masquerading inside the cluster.
		out, err := inPod(t, ns, from.Name, "timeout 5 wget -qO- http://"+pods[(indexOf(pods, from.Name)+1)%len(pods)].Status.PodIP+":8080/clientip")
		if err != nil || !strings.HasPrefix(strings.TrimSpace(out), from.Status.PodIP+":") {
			t.Errorf("client address seen by peer of %s = %q (want %s:port), err %v", from.Name, out, from.Status.PodIP, err)
		}
	}
}

func indexOf(pods []corev1.Pod, name string) int {
	for i, p := range pods {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func TestClusterIPSpreadsAndDropsUnready(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "web", 3)
	svc := service(t, ns, "web", corev1.ServiceTypeClusterIP)
	client0 := pods[0].Name
	url := "http://" + svc.Spec.ClusterIP + "/hostname"
	var seen map[string]int
	eventually(t, time.Minute, "requests spread over all three pods", func() bool {
		seen = hostnames(t, ns, client0, url, 30)
		return len(seen) == 3 && seen[""] == 0
	})
	// One pod fails its readiness probe: it leaves the rotation.
	out, err := inPod(t, ns, pods[1].Name, "timeout 3 wget -qO- http://127.0.0.1:8080/readyz/fail")
	if err != nil {
		t.Fatalf("readyz/fail: %v %s", err, out)
	}
	eventually(t, time.Minute, pods[1].Name+" out of rotation", func() bool {
		seen = hostnames(t, ns, client0, url, 20)
		return seen[pods[1].Name] == 0 && seen[""] == 0 && len(seen) == 2
	})
	// And the name works through the same path, from another node.
	// And by the Service's name (cluster DNS, search path), from another node.
	seen = hostnames(t, ns, pods[2].Name, "http://web/hostname", 10)
	if seen[""] > 0 || seen[pods[1].Name] > 0 || len(seen) != 2 {
		t.Errorf("by name from %s: %v (want the two ready pods, no failures)", pods[2].Name, seen)
	}
}

func TestNodePortFromHost(t *testing.T) {
	ns := namespace(t)
	spreadDeployment(t, ns, "np", 3)
	svc := service(t, ns, "np", corev1.ServiceTypeNodePort)
	port := svc.Spec.Ports[0].NodePort
	for i := 1; i <= 3; i++ {
		url := fmt.Sprintf("http://%s.%d:%d/hostname", nodeSubnet, 10+i, port)
		var out []byte
		var err error
		eventually(t, time.Minute, "NodePort on node "+fmt.Sprint(i), func() bool {
			out, err = exec.Command("curl", "-s", "-m", "3", url).Output()
			return err == nil && strings.HasPrefix(string(out), "np-")
		})
	}
}

func TestServiceWithoutEndpointsRejectsAtOnce(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "probe", 1)
	svc := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "empty"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "nothing-matches"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	})
	// Without endpoints the connection is refused (ICMP reject from the
	// service rules) at once, instead of hanging until the client times out.
	var out string
	var took time.Duration
	eventually(t, 30*time.Second, "connection refused at once", func() bool {
		start := time.Now()
		out, _ = inPod(t, ns, pods[0].Name, fmt.Sprintf("timeout 10 wget -qO- http://%s/ 2>&1", svc.Spec.ClusterIP))
		took = time.Since(start)
		return strings.Contains(out, "refused")
	})
	if took > 5*time.Second {
		t.Errorf("refusal took %s (the client's timeout is 10 s): %s", took, out)
	}
}

// TestLoadBalancerFromHost: a LoadBalancer Service gets the nodes' addresses
// as EXTERNAL-IPs and answers on them from outside the cluster; one asking
// for a port an older LoadBalancer holds stays pending.
func TestLoadBalancerFromHost(t *testing.T) {
	ns := namespace(t)
	spreadDeployment(t, ns, "lb", 2)
	// Port 80 of every node is the Ingress proxies' (kube-system/
	// skiff-ingress, older): a LoadBalancer asking for it stays pending.
	taken := service(t, ns, "lb", corev1.ServiceTypeLoadBalancer)
	svc := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lb-8081"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "lb"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8081, TargetPort: intstr.FromInt32(8080)}},
		},
	})
	var ingress []corev1.LoadBalancerIngress
	eventually(t, time.Minute, "EXTERNAL-IP: the three nodes' addresses", func() bool {
		got, err := client.CoreV1().Services(ns).Get(context.Background(), svc.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		ingress = got.Status.LoadBalancer.Ingress
		return len(ingress) == 3
	})
	for _, in := range ingress {
		if !strings.HasPrefix(in.IP, nodeSubnet+".") {
			t.Errorf("ingress IP %s is not a node address", in.IP)
		}
		url := fmt.Sprintf("http://%s:%d/hostname", in.IP, svc.Spec.Ports[0].Port)
		eventually(t, time.Minute, "LoadBalancer answer at "+url, func() bool {
			out, err := exec.Command("curl", "-s", "-m", "3", url).Output()
			return err == nil && strings.HasPrefix(string(out), "lb-")
		})
	}
	out, err := kubectl(t, "get", "svc", "-n", ns, svc.Name)
	if err != nil || !strings.Contains(out, nodeSubnet+".") {
		t.Errorf("kubectl get svc shows no EXTERNAL-IP: %v\n%s", err, out)
	}
	if got, err := client.CoreV1().Services(ns).Get(context.Background(), taken.Name, metav1.GetOptions{}); err != nil || len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("a LoadBalancer on port 80, held by the ingress Service: ingress %v (err %v), want pending", got.Status.LoadBalancer.Ingress, err)
	}
	if out, err := kubectl(t, "get", "svc", "-n", ns, taken.Name); err != nil || !strings.Contains(out, "<pending>") {
		t.Errorf("kubectl get svc of the port-80 LoadBalancer: want EXTERNAL-IP <pending>: %v\n%s", err, out)
	}
}
