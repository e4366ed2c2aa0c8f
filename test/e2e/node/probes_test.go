package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestInitContainers: two init containers run one after the other before the
// main container; kubectl shows Init:N/2 while they run, and each ends
// terminated/Completed with exit code 0. Each appends its name to a file in
// an emptyDir, so the main container sees the order they ran in.
func TestInitContainers(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	work := corev1.VolumeMount{Name: "work", MountPath: "/work"}
	init := func(name string) corev1.Container {
		return corev1.Container{
			Name: name, Image: busyboxImage, VolumeMounts: []corev1.VolumeMount{work},
			// Slow enough for kubectl to see it running.
			Command: []string{"sh", "-c", "sleep 2; echo " + name + " >> /work/order"},
		}
	}
	p := pod("init", busybox("cat /work/order; sleep 3600"), func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{init("first"), init("second")}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{work}
		p.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	})
	createPod(t, ns, p)

	// What `kubectl get pod` prints in the STATUS column while they run.
	statuses := map[string]bool{}
	eventually(t, podStart, "kubectl get pod init showing Running", func() (bool, string) {
		r := kubectl(t, "get", "pod", "init", "-n", ns, "--no-headers")
		if f := strings.Fields(r.Stdout); len(f) >= 3 {
			statuses[f[2]] = true
		}
		return statuses["Running"], fmt.Sprintf("statuses seen: %v", statuses)
	})
	if !statuses["Init:0/2"] && !statuses["Init:1/2"] {
		t.Errorf("kubectl get pod never showed Init:0/2 or Init:1/2 while the init containers ran; saw %v", statuses)
	}

	got := waitRunning(t, ns, "init")
	if podCondition(got, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Errorf("Initialized=%s, want True", podCondition(got, corev1.PodInitialized))
	}
	var prevFinished time.Time
	for i, name := range []string{"first", "second"} {
		cs := containerStatus(got, name)
		if cs == nil || cs.State.Terminated == nil {
			t.Fatalf("init container %s: status %+v, want terminated", name, cs)
		}
		term := cs.State.Terminated
		if term.ExitCode != 0 || term.Reason != "Completed" {
			t.Errorf("init container %s: exit %d reason %q, want 0 Completed", name, term.ExitCode, term.Reason)
		}
		if i > 0 && term.StartedAt.Time.Before(prevFinished) {
			t.Errorf("init container %s started at %s, before the previous one finished at %s", name, term.StartedAt, prevFinished)
		}
		prevFinished = term.FinishedAt.Time
	}
	if main := containerStatus(got, "app"); main == nil || main.State.Running == nil || main.State.Running.StartedAt.Time.Before(prevFinished) {
		t.Errorf("main container %+v did not start after the init containers finished (%s)", main, prevFinished)
	}
	if out := mustKubectl(t, "logs", "-n", ns, "init"); out != "first\nsecond\n" {
		t.Errorf("main container read the init containers' file as %q, want \"first\\nsecond\\n\"", out)
	}
}

// TestProbeKinds: startup, readiness and liveness probes of every kind
// (exec, httpGet, tcpSocket, grpc) pass against healthy netexec containers,
// which become started and ready without restarts.
func TestProbeKinds(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	fast := func(h corev1.ProbeHandler) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1, TimeoutSeconds: 2, FailureThreshold: 30}
	}
	execGet := func(port int, path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", fmt.Sprintf("timeout 2 wget -qO- http://127.0.0.1:%d%s", port, path)}}}
	}
	httpGetH := func(port int, path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(int32(port)), Path: path}}
	}
	tcp := func(port int) corev1.ProbeHandler {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}
	}
	grpc := func(port int) corev1.ProbeHandler {
		return corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port)}}
	}
	p := pod("probes", func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{
			{
				Name: "a", Image: testhostImage,
				Command:        []string{"/testhost", "netexec", "--http-port", "8080", "--udp-port", "0", "--grpc-port", "9090"},
				StartupProbe:   fast(execGet(8080, "/healthz")),
				ReadinessProbe: fast(httpGetH(8080, "/readyz")),
				LivenessProbe:  fast(tcp(8080)),
			},
			{
				Name: "b", Image: testhostImage,
				Command:        []string{"/testhost", "netexec", "--http-port", "8081", "--udp-port", "0", "--grpc-port", "9091"},
				StartupProbe:   fast(grpc(9091)),
				ReadinessProbe: fast(execGet(8081, "/readyz")),
				LivenessProbe:  fast(httpGetH(8081, "/healthz")),
			},
			{
				Name: "c", Image: testhostImage,
				Command:        []string{"/testhost", "netexec", "--http-port", "8082", "--udp-port", "0", "--grpc-port", "9092"},
				StartupProbe:   fast(tcp(8082)),
				ReadinessProbe: fast(grpc(9092)),
				LivenessProbe:  fast(execGet(8082, "/healthz")),
			},
			{
				Name: "d", Image: testhostImage,
				Command:        []string{"/testhost", "netexec", "--http-port", "8083", "--udp-port", "0", "--grpc-port", "9093"},
				StartupProbe:   fast(httpGetH(8083, "/healthz")),
				ReadinessProbe: fast(tcp(8083)),
				LivenessProbe:  fast(grpc(9093)),
			},
		}
	})
	createPod(t, ns, p)
	waitRunning(t, ns, "probes")
	// A few liveness periods later, nothing has been restarted.
	time.Sleep(4 * time.Second)
	got := getPod(t, ns, "probes")
	for _, cs := range got.Status.ContainerStatuses {
		if !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 || cs.State.Running == nil {
			t.Errorf("container %s: ready=%v started=%v restarts=%d state=%+v; want ready, started, running, 0 restarts",
				cs.Name, cs.Ready, deref(cs.Started), cs.RestartCount, cs.State)
		}
	}
	// Startup probes may fail until netexec listens; nothing else may.
	events, err := the.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == "Killing" || (e.Reason == "Unhealthy" && !strings.HasPrefix(e.Message, "Startup probe failed")) {
			t.Errorf("event %s about a healthy pod: %s", e.Reason, e.Message)
		}
	}
}

// TestLivenessFailureRestarts: once /healthz fails (switched from the host),
// the kubelet reports Unhealthy, kills the container and starts it again.
func TestLivenessFailureRestarts(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	p := pod("live", container(func(c *corev1.Container) {
		c.LivenessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080), Path: "/healthz"}},
			PeriodSeconds: 1, FailureThreshold: 2,
		}
	}))
	createPod(t, ns, p)
	running := waitRunning(t, ns, "live")
	before := containerStatus(running, "app").ContainerID
	// Running is not listening yet: the pod has no readiness probe.
	eventually(t, 10*time.Second, "/healthz switched to failing", func() (bool, string) {
		code, _, err := httpGet("http://" + running.Status.PodIP + ":8080/healthz/fail")
		return err == nil && code == 200, fmt.Sprintf("%d %v", code, err)
	})
	got := waitPod(t, ns, "live", slow, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs.RestartCount >= 1 && cs.State.Running != nil && cs.Ready
	})
	cs := containerStatus(got, "app")
	if cs.ContainerID == before {
		t.Errorf("container ID %s unchanged after a restart", before)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil {
		t.Errorf("no lastState.terminated after a liveness restart: %+v", cs.LastTerminationState)
	}
	msg := waitEvent(t, ns, "live", "Unhealthy", 10*time.Second)
	if !strings.Contains(msg, "Liveness probe failed") {
		t.Errorf("Unhealthy event says %q, want it to name the liveness probe", msg)
	}
	if msg := waitEvent(t, ns, "live", "Killing", 10*time.Second); !strings.Contains(msg, "liveness") {
		t.Errorf("Killing event says %q, want it to mention the liveness probe", msg)
	}
	// The new container is healthy again.
	eventually(t, 10*time.Second, "GET /healthz after the restart answers 200", func() (bool, string) {
		code, body, err := httpGet("http://" + got.Status.PodIP + ":8080/healthz")
		return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
	})
}

// TestReadinessFailure: a pod whose readiness probe fails turns NotReady and
// its endpoint leaves the Service's ready set, so the Service only reaches
// the other pod; when it passes again, it comes back.
func TestReadinessFailure(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	ready := func(c *corev1.Container) {
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080), Path: "/readyz"}},
			PeriodSeconds: 1, FailureThreshold: 1,
		}
	}
	for _, name := range []string{"r1", "r2"} {
		createPod(t, ns, pod(name, label("svc", "ready"), container(ready)))
	}
	svc, err := the.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ready"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"svc": "ready"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := waitRunning(t, ns, "r1"), waitRunning(t, ns, "r2")
	waitReadyEndpoints(t, ns, "ready", r1.Status.PodIP, r2.Status.PodIP)

	if code, _, err := httpGet("http://" + r1.Status.PodIP + ":8080/readyz/fail"); err != nil || code != 200 {
		t.Fatalf("switch r1's /readyz to failing: %d %v", code, err)
	}
	got := waitPod(t, ns, "r1", 30*time.Second, "NotReady", func(p *corev1.Pod) bool {
		return podCondition(p, corev1.PodReady) == corev1.ConditionFalse
	})
	if got.Status.Phase != corev1.PodRunning || podCondition(got, corev1.ContainersReady) != corev1.ConditionFalse {
		t.Errorf("r1: phase %s ContainersReady %s, want Running and False", got.Status.Phase, podCondition(got, corev1.ContainersReady))
	}
	if cs := containerStatus(got, "app"); cs.RestartCount != 0 {
		t.Errorf("r1 restarted (%d) for a readiness failure", cs.RestartCount)
	}
	waitReadyEndpoints(t, ns, "ready", r2.Status.PodIP)
	eventually(t, 30*time.Second, "Service reaching r2 only", func() (bool, string) {
		for i := 0; i < 10; i++ {
			code, body, err := httpGet("http://" + svc.Spec.ClusterIP + "/hostname")
			if err != nil || code != 200 || body != "r2" {
				return false, fmt.Sprintf("GET via the Service = %d %q %v", code, body, err)
			}
		}
		return true, ""
	})

	if code, _, err := httpGet("http://" + r1.Status.PodIP + ":8080/readyz/ok"); err != nil || code != 200 {
		t.Fatalf("switch r1's /readyz back: %d %v", code, err)
	}
	waitRunning(t, ns, "r1")
	waitReadyEndpoints(t, ns, "ready", r1.Status.PodIP, r2.Status.PodIP)
}

// waitReadyEndpoints waits until the Service's EndpointSlices list exactly
// ips as ready endpoints.
func waitReadyEndpoints(t *testing.T, ns, svc string, ips ...string) {
	t.Helper()
	want := strings.Join(sortedCopy(ips), ",")
	eventually(t, 30*time.Second, "EndpointSlice of "+svc+" with ready endpoints "+want, func() (bool, string) {
		list, err := the.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return false, err.Error()
		}
		var ready, all []string
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				all = append(all, fmt.Sprintf("%v(ready=%v)", e.Addresses, deref(e.Conditions.Ready)))
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready = append(ready, e.Addresses...)
				}
			}
		}
		return strings.Join(sortedCopy(ready), ",") == want, "endpoints: " + strings.Join(all, " ")
	})
}
