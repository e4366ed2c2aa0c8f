package node

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestGracefulDeletion: a pod whose process ignores SIGTERM is killed when
// its terminationGracePeriodSeconds (3 s) runs out, so it disappears after
// about 3 s, neither at once nor after the default 30 s; one that exits on
// SIGTERM goes at once.
func TestGracefulDeletion(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("stubborn", command("/testhost", "pause", "--ignore-sigterm"), func(p *corev1.Pod) {
		p.Spec.TerminationGracePeriodSeconds = ptr(int64(3))
	}))
	createPod(t, ns, pod("polite", command("/testhost", "pause"), func(p *corev1.Pod) {
		p.Spec.TerminationGracePeriodSeconds = ptr(int64(30))
	}))
	waitRunning(t, ns, "stubborn")
	waitRunning(t, ns, "polite")

	took := deleteAndTime(t, ns, "stubborn")
	t.Logf("pod ignoring SIGTERM with a 3s grace period gone after %s", took.Round(time.Millisecond))
	if took < 2500*time.Millisecond || took > 15*time.Second {
		t.Errorf("pod ignoring SIGTERM (grace 3s) was gone after %s, want about 3s", took)
	}
	took = deleteAndTime(t, ns, "polite")
	t.Logf("pod exiting on SIGTERM with a 30s grace period gone after %s", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("pod exiting on SIGTERM (grace 30s) was gone after %s, want well before its grace period", took)
	}
	if reasons := eventReasons(t, ns, "stubborn"); !contains(reasons, "Killing") {
		t.Errorf("no Killing event for the deleted pod (events: %v)", reasons)
	}
}

// deleteAndTime deletes a pod and returns how long until it was gone.
func deleteAndTime(t *testing.T, ns, name string) time.Duration {
	t.Helper()
	began := time.Now()
	if err := the.client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ns, name, 45*time.Second)
	return time.Since(began)
}

// TestLifecycleHooks: a postStart hook has run by the time the container is
// Running, and a preStop hook runs before the container is stopped (it
// writes into an emptyDir another container of the pod reads).
func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	shared := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	createPod(t, ns, pod("hooks", busybox("sleep 3600"), func(p *corev1.Pod) {
		p.Spec.TerminationGracePeriodSeconds = ptr(int64(15))
		p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		c := &p.Spec.Containers[0]
		c.VolumeMounts = shared
		c.Lifecycle = &corev1.Lifecycle{
			PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo post-start ran > /tmp/poststart"}}},
			PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo pre-stop ran > /shared/prestop"}}},
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "watcher", Image: busyboxImage, VolumeMounts: shared,
			Command: []string{"sh", "-c", "sleep 3600"},
		})
	}))
	waitRunning(t, ns, "hooks")
	if got := execIn(t, ns, "hooks", "app", "cat", "/tmp/poststart"); got != "post-start ran\n" {
		t.Errorf("postStart hook's file holds %q", got)
	}
	// Deleting the pod runs the preStop hook; the watcher (a shell as PID 1,
	// which ignores SIGTERM) lives on through the grace period, so the
	// hook's file can be read from it while the pod terminates.
	if err := the.client.CoreV1().Pods(ns).Delete(context.Background(), "hooks", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "preStop hook's file seen by the other container", func() (bool, string) {
		r := kubectl(t, "exec", "-n", ns, "hooks", "-c", "watcher", "--", "cat", "/shared/prestop")
		return r.Stdout == "pre-stop ran\n", r.Stdout + r.Stderr
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
