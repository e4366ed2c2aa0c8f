package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The resilience tests are not parallel: they take the node's runtime or
// the whole server away, so they run before the parallel tests start.

// TestContainerdKilled: kill -9 of the agent's containerd is repaired by the
// agent; the pods keep running in the same containers, without restarts, and
// a new pod starts afterwards.
func TestContainerdKilled(t *testing.T) {
	ns := namespace(t)
	createPod(t, ns, pod("before"))
	before := waitRunning(t, ns, "before")
	id := containerStatus(before, "app").ContainerID
	mustAnswer(t, before)

	config := filepath.Join(the.dataDir, "agent", "containerd", "config.toml")
	pid := containerdPID(config)
	if pid == 0 {
		t.Fatalf("no containerd process with --config %s", config)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 containerd %d: %v", pid, err)
	}
	began := time.Now()
	eventually(t, 30*time.Second, "a new containerd for "+config, func() (bool, string) {
		p := containerdPID(config)
		return p != 0 && p != pid, "pid " + strconv.Itoa(p)
	})
	t.Logf("containerd %d killed; a new one runs after %s", pid, time.Since(began).Round(time.Millisecond))

	// The pod's process never stopped: it answers throughout, and the
	// kubelet sees the same container once it reconnects.
	mustAnswer(t, before)
	createPod(t, ns, pod("after"))
	waitRunning(t, ns, "after")
	got := getPod(t, ns, "before")
	cs := containerStatus(got, "app")
	if got.Status.Phase != corev1.PodRunning || cs.ContainerID != id || cs.RestartCount != 0 || !cs.Ready {
		t.Errorf("pod before: phase %s container %s (was %s) restarts %d ready %v; want Running, same container, 0 restarts, ready",
			got.Status.Phase, cs.ContainerID, id, cs.RestartCount, cs.Ready)
	}
	if out := execIn(t, ns, "after", "", "cat", "/proc/1/cmdline"); !bytes.Contains([]byte(out), []byte("netexec")) {
		t.Errorf("exec into the new pod after containerd's restart: %q", out)
	}
}

// TestServerKilled: SIGKILL of the whole server (control plane, kubelet,
// kube-proxy) and a start on the same data dir leave running pods Running in
// the same containers with the same restart counts; a pod deleted after the
// restart goes away, and a Service still routes to the survivors.
func TestServerKilled(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	for _, name := range []string{"keep", "drop"} {
		createPod(t, ns, pod(name))
	}
	crash := pod("crash", command("/testhost", "exit", "--code", "1", "--after", "1s"))
	createPod(t, ns, crash)
	keep, drop := waitRunning(t, ns, "keep"), waitRunning(t, ns, "drop")
	mustAnswer(t, keep)
	waitPod(t, ns, "crash", slow, "restarted once", func(p *corev1.Pod) bool {
		return containerStatus(p, "app") != nil && containerStatus(p, "app").RestartCount >= 1
	})
	ids := map[string]string{
		"keep": containerStatus(keep, "app").ContainerID,
		"drop": containerStatus(drop, "app").ContainerID,
	}

	the.kill()
	began := time.Now()
	// While the server is down the pods keep serving.
	mustAnswer(t, keep)
	if err := the.start(); err != nil {
		t.Fatalf("start the server again: %v", err)
	}
	t.Logf("server back after %s", time.Since(began).Round(time.Millisecond))

	for _, name := range []string{"keep", "drop"} {
		// The kubelet re-reports status shortly after it starts.
		got := waitPod(t, ns, name, podStart, "Running and Ready after the restart", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
		})
		cs := containerStatus(got, "app")
		if cs.ContainerID != ids[name] || cs.RestartCount != 0 {
			t.Errorf("pod %s after the restart: container %s (was %s), restarts %d (was 0)", name, cs.ContainerID, ids[name], cs.RestartCount)
		}
	}
	if got := getPod(t, ns, "crash"); containerStatus(got, "app").RestartCount < 1 {
		t.Errorf("pod crash: restartCount %d after the server restart, want at least the 1 it had", containerStatus(got, "app").RestartCount)
	}

	if err := the.client.CoreV1().Pods(ns).Delete(ctx, "drop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ns, "drop", 30*time.Second)
	if code, _, err := httpGet("http://" + drop.Status.PodIP + ":8080/hostname"); err == nil && code == 200 {
		// The IP may already serve another pod; only the old answer is wrong.
		if _, body, _ := httpGet("http://" + drop.Status.PodIP + ":8080/hostname"); body == "drop" {
			t.Errorf("deleted pod drop still answers on %s", drop.Status.PodIP)
		}
	}
	createPod(t, ns, pod("new"))
	waitRunning(t, ns, "new")
}

// TestServerStopsPromptly: SIGTERM stops the server with its node agent
// cleanly (exit 0) within seconds, pods running on, and it starts again on
// the same data dir with them.
func TestServerStopsPromptly(t *testing.T) {
	ns := namespace(t)
	createPod(t, ns, pod("stays"))
	stays := waitRunning(t, ns, "stays")
	took, code := the.stop(10 * time.Second)
	t.Logf("SIGTERM: exit status %d after %s", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("SIGTERM: exit status %d after %s, want 0 within 10 s", code, took.Round(time.Millisecond))
	}
	mustAnswer(t, stays)
	if err := the.start(); err != nil {
		t.Fatalf("start the server again: %v", err)
	}
	waitRunning(t, ns, "stays")
}

// containerdPID finds the containerd started with --config config, or 0.
func containerdPID(config string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) < 3 || filepath.Base(string(args[0])) != "containerd" {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if string(args[i]) == "--config" && string(args[i+1]) == config {
				return pid
			}
		}
	}
	return 0
}

// mustAnswer checks that the netexec pod answers GET /hostname on its pod IP
// with its name (within 10 s: a container that just started may not listen
// yet, and these pods have no readiness probe).
func mustAnswer(t *testing.T, p *corev1.Pod) {
	t.Helper()
	eventually(t, 10*time.Second, p.Name+" answers on its pod IP", func() (bool, string) {
		code, body, err := httpGet("http://" + p.Status.PodIP + ":8080/hostname")
		return err == nil && code == 200 && body == p.Name,
			fmt.Sprintf("GET http://%s:8080/hostname = %d %q (%v), want 200 %q", p.Status.PodIP, code, body, err, p.Name)
	})
}
