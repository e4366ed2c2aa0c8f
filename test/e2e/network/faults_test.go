package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Faults: agents restarted and lost. Each test leaves every node's agent
// running and its Node Ready, as later tests expect.

// agentPID is the pid of node skiff-nI's `skiff agent`, from DIR/nI.pid.
func agentPID(t *testing.T, i int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clusterDir, fmt.Sprintf("n%d.pid", i)))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// An exited child of this process that is not reaped yet is a zombie.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// stopAgent sends sig to node skiff-nI's agent and waits (30 s) for it to
// exit. The test's cleanup starts the agent again if the test did not.
func stopAgent(t *testing.T, i int, sig syscall.Signal) {
	t.Helper()
	pid := agentPID(t, i)
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal agent of skiff-n%d (pid %d): %v", i, pid, err)
	}
	t.Cleanup(func() {
		if !alive(agentPID(t, i)) {
			startAgent(t, i)
		}
	})
	eventually(t, 30*time.Second, fmt.Sprintf("agent of skiff-n%d (pid %d) to exit", i, pid), func() bool { return !alive(pid) })
}

// startAgent starts node skiff-nI's agent with the command line
// scripts/netns-cluster.sh uses, appending to its log and replacing its pid
// file (so `netns-cluster.sh down` stops it).
func startAgent(t *testing.T, i int) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(clusterDir, fmt.Sprintf("n%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	node := fmt.Sprintf("skiff-n%d", i)
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+node, skiffBin, "agent",
		"--server", fmt.Sprintf("https://%s.1:%d", nodeSubnet, serverPort),
		"--token-file", filepath.Join(clusterDir, "server", "token"),
		"--data-dir", filepath.Join(clusterDir, fmt.Sprintf("n%d", i)),
		"--node-name", node, "--node-ip", fmt.Sprintf("%s.%d", nodeSubnet, 10+i),
		"--pod-network", podNetwork())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Not in the test's process group: it outlives the test, until
	// `netns-cluster.sh down` stops it by its pid file.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent of %s: %v", node, err)
	}
	go func() { _ = cmd.Wait() }() // reaps it should it exit while the tests run
	// nsenter execs the agent: the pid is the agent's.
	if err := os.WriteFile(filepath.Join(clusterDir, fmt.Sprintf("n%d.pid", i)), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// podNetwork is the backend netns-cluster.sh gave the agents: $POD_NETWORK,
// host-gw by default.
func podNetwork() string {
	if v := os.Getenv("POD_NETWORK"); v != "" {
		return v
	}
	return "host-gw"
}

func nodeReady(name string) corev1.ConditionStatus {
	n, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// podOn runs one pod of testhost's image with command script on node
// (spec.nodeName, past the scheduler) and waits for it to run.
func podOn(t *testing.T, ns, name, node, script string, labels map[string]string) *corev1.Pod {
	t.Helper()
	createPod(t, ns, name, labels, func(s *corev1.PodSpec) {
		s.NodeName = node
		s.Containers[0].Command = []string{"sh", "-c", script}
		s.Containers[0].Args = nil
	})
	return waitRunning(t, ns, name)
}

// serviceIPs lists kube-proxy's ClusterIP map on node skiff-nI ("" on error).
func serviceIPs(t *testing.T, i int) string {
	t.Helper()
	out, err := exec.Command("nsenter", fmt.Sprintf("--net=/var/run/netns/skiff-n%d", i), "nft", "list", "map", "ip", "kube-proxy", "service-ips").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// podLog is the pod's log, one entry a line.
func podLog(ns, pod string) ([]string, error) {
	out, err := client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(context.Background())
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// lines is podLog, failing the test when the log cannot be read.
func lines(t *testing.T, ns, pod string) []string {
	t.Helper()
	l, err := podLog(ns, pod)
	if err != nil {
		t.Fatalf("logs of %s: %v", pod, err)
	}
	return l
}

// A connection through a ClusterIP outlives a restart of the client node's
// agent: kube-proxy rebuilds its table on start, and the connection's
// conntrack entry (with its DNAT) is untouched.
func TestAgentRestartKeepsEstablishedConnections(t *testing.T) {
	ns := namespace(t)
	// The sink prints what it receives (its stdin never ends nor sends, so
	// busybox nc keeps the connection open); its log is the record.
	podOn(t, ns, "sink", "skiff-n2", "sleep 100000 | nc -l -p 9000", map[string]string{"app": "sink"})
	svc := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sink"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "sink"},
			Ports:    []corev1.ServicePort{{Port: 9000, TargetPort: intstr.FromInt32(9000)}},
		},
	})
	// The sink accepts one connection only: connect once kube-proxy on
	// skiff-n1 routes the ClusterIP to it (in service-ips only with a ready
	// endpoint).
	eventually(t, time.Minute, "ClusterIP programmed on skiff-n1", func() bool {
		return strings.Contains(serviceIPs(t, 1), svc.Spec.ClusterIP+" . tcp . 9000 ")
	})
	// The client writes a numbered line a second over one connection and
	// says so if nc ever exits (connection reset or closed).
	podOn(t, ns, "source", "skiff-n1", fmt.Sprintf(
		`i=0; while echo line$i; do i=$((i+1)); sleep 1; done | nc %s 9000; echo nc-exited; sleep 3600`,
		svc.Spec.ClusterIP), nil)
	eventually(t, time.Minute, "lines reaching the sink", func() bool { return len(lines(t, ns, "sink")) >= 3 })

	before := len(lines(t, ns, "sink"))
	stopAgent(t, 1, syscall.SIGTERM)
	time.Sleep(3 * time.Second) // the connection runs with no agent at all
	startAgent(t, 1)
	eventually(t, 2*time.Minute, "skiff-n1 Ready again", func() bool { return nodeReady("skiff-n1") == corev1.ConditionTrue })
	// The new kube-proxy (the old one's metrics port died with it) has
	// rebuilt the table: a full sync is on its record.
	eventually(t, time.Minute, "kube-proxy on skiff-n1 rebuilt its table", func() bool {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/skiff-n1", "curl", "-s", "-m", "3", "http://127.0.0.1:10249/metrics").Output()
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, `kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} `) && !strings.HasSuffix(l, " 0") {
				return true
			}
		}
		return false
	})
	if !strings.Contains(serviceIPs(t, 1), svc.Spec.ClusterIP+" . tcp . 9000 ") {
		t.Fatalf("ClusterIP %s missing from skiff-n1's kube-proxy table after the restart", svc.Spec.ClusterIP)
	}
	mid := len(lines(t, ns, "sink"))
	time.Sleep(5 * time.Second)
	got := lines(t, ns, "sink")
	if len(got) < mid+3 {
		t.Fatalf("lines stopped after the agent restart: %d before the restart, %d after it, %d five seconds later", before, mid, len(got))
	}
	// One unbroken sequence: the same connection, nothing lost.
	for k, l := range got {
		if l != fmt.Sprintf("line%d", k) {
			t.Fatalf("line %d of the sink is %q: the stream broke (log %v)", k, l, got)
		}
	}
	if src := lines(t, ns, "source"); len(src) > 0 {
		t.Errorf("the client's nc exited: %v", src)
	}
}

// A node that stops heartbeating goes NotReady/Unknown, its pods' endpoints
// turn not ready, and traffic through a ClusterIP from another node stops
// going there. The node is then tainted unreachable; the pods tolerate that
// for 5 s (instead of the default 300 s), are evicted and replaced on the
// other nodes, and the Service spreads over three ready pods again. When
// the node's agent comes back, its kubelet finishes the evicted pod's
// deletion and the node is Ready.
func TestLostNodeEvictsAndReroutes(t *testing.T) {
	ns := namespace(t)
	tolerate := int64(5)
	pods := spreadDeployment(t, ns, "lost", 3, func(s *corev1.PodSpec) {
		// A tainted node does not count for the spread, so the replacement
		// may go to a node that already has a pod.
		honor := corev1.NodeInclusionPolicyHonor
		s.TopologySpreadConstraints[0].NodeTaintsPolicy = &honor
		for _, key := range []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady} {
			s.Tolerations = append(s.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tolerate,
			})
		}
	})
	svc := service(t, ns, "lost", corev1.ServiceTypeClusterIP)
	var lost, from corev1.Pod
	for _, p := range pods {
		switch p.Spec.NodeName {
		case "skiff-n3":
			lost = p
		case "skiff-n1":
			from = p
		}
	}
	if lost.Name == "" || from.Name == "" {
		t.Fatalf("want pods on skiff-n1 and skiff-n3, have %v", pods)
	}
	url := "http://" + svc.Spec.ClusterIP + "/hostname"
	eventually(t, time.Minute, "requests reach all three pods", func() bool {
		seen := hostnames(t, ns, from.Name, url, 30)
		return len(seen) == 3 && seen[""] == 0
	})

	stopAgent(t, 3, syscall.SIGKILL)
	killed := time.Now()
	since := func() time.Duration { return time.Since(killed).Round(time.Second) }
	eventually(t, 90*time.Second, "skiff-n3 not Ready", func() bool {
		s := nodeReady("skiff-n3")
		return s == corev1.ConditionUnknown || s == corev1.ConditionFalse
	})
	t.Logf("skiff-n3 not Ready %s after its agent was killed", since())
	eventually(t, 90*time.Second, lost.Name+"'s endpoint gone or not ready", func() bool {
		list, err := client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=lost"})
		if err != nil {
			return false
		}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.TargetRef != nil && e.TargetRef.Name == lost.Name {
					return e.Conditions.Ready != nil && !*e.Conditions.Ready
				}
			}
		}
		return true
	})
	eventually(t, 90*time.Second, "traffic from skiff-n1 no longer reaching "+lost.Name, func() bool {
		seen := hostnames(t, ns, from.Name, url, 20)
		return seen[lost.Name] == 0 && seen[""] == 0
	})
	t.Logf("out of rotation %s after its agent was killed", since())

	// Eviction: the pod is marked for deletion (it cannot finish while its
	// kubelet is away) and a replacement runs elsewhere.
	eventually(t, 2*time.Minute, lost.Name+" evicted", func() bool {
		p, err := client.CoreV1().Pods(ns).Get(context.Background(), lost.Name, metav1.GetOptions{})
		return err != nil || p.DeletionTimestamp != nil
	})
	t.Logf("%s evicted %s after its agent was killed", lost.Name, since())
	eventually(t, 2*time.Minute, "traffic spread over three ready pods, none on skiff-n3", func() bool {
		seen := hostnames(t, ns, from.Name, url, 30)
		return len(seen) == 3 && seen[""] == 0 && seen[lost.Name] == 0
	})
	t.Logf("three pods serving again %s after the agent was killed", since())
	list, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=lost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Spec.NodeName == "skiff-n3" {
			t.Errorf("replacement %s placed on the lost node", p.Name)
		}
	}

	startAgent(t, 3)
	eventually(t, 2*time.Minute, "skiff-n3 Ready again", func() bool { return nodeReady("skiff-n3") == corev1.ConditionTrue })
	eventually(t, 2*time.Minute, "the evicted "+lost.Name+" deleted by its returning kubelet", func() bool {
		_, err := client.CoreV1().Pods(ns).Get(context.Background(), lost.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
