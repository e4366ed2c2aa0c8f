package node

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCrashLoopBackOff: a container that keeps exiting 1 is restarted with
// a back-off: restartCount grows, it waits in CrashLoopBackOff, and its last
// termination says exit code 1, reason Error.
func TestCrashLoopBackOff(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("crash", command("/testhost", "exit", "--code", "1")))
	// The kubelet restarts it with a back-off of 10 s, then 20 s, 40 s, …
	// It computes the pod's status at the start of a sync and learns of the
	// back-off during that sync; the next sync (its pod worker retries a
	// failed sync after 10–15 s) publishes waiting/CrashLoopBackOff, and
	// restarts the container at once if the back-off has passed by then.
	// So with short back-offs CrashLoopBackOff may show for less than a
	// second, as with upstream's kubelet: a watch sees every status written,
	// where polling may not.
	w, err := the.client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=crash"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var waited atomic.Bool
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && waitingReason(p, "app") == "CrashLoopBackOff" {
				waited.Store(true)
			}
		}
	}()
	shown := map[string]bool{}
	got := waitPod(t, ns, "crash", 2*slow, "restarted three times", func(p *corev1.Pod) bool {
		if f := strings.Fields(kubectl(t, "get", "pod", "crash", "-n", ns, "--no-headers").Stdout); len(f) > 2 {
			shown[f[2]] = true
		}
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount >= 3
	})
	t.Logf("kubectl get pod STATUS values seen: %v", shown)
	if !waited.Load() {
		t.Errorf("no status written through three back-offs had waiting/CrashLoopBackOff (kubectl showed %v)", shown)
	}
	cs := containerStatus(got, "app")
	lt := cs.LastTerminationState.Terminated
	if lt == nil || lt.ExitCode != 1 || lt.Reason != "Error" {
		t.Errorf("lastState.terminated = %+v, want exit code 1, reason Error", lt)
	}
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running (restartPolicy Always)", got.Status.Phase)
	}
	// Ready is not checked on this snapshot: between back-offs the container
	// runs for a moment (with no readiness probe it is Ready then), as
	// upstream's kubelet reports it.
	if msg := waitEvent(t, ns, "crash", "BackOff", 10*time.Second); !strings.Contains(msg, "Back-off restarting failed container") {
		t.Errorf("BackOff event says %q", msg)
	}
}

// TestRestartPolicies: restartPolicy Never leaves a failed container dead and
// the pod Failed; OnFailure with exit 0 ends the pod Succeeded.
func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("never", command("/testhost", "exit", "--code", "3"), restartPolicy(corev1.RestartPolicyNever)))
	createPod(t, ns, pod("onfailure", busybox("echo done"), restartPolicy(corev1.RestartPolicyOnFailure)))

	failed := waitPod(t, ns, "never", podStart, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	cs := containerStatus(failed, "app")
	if term := cs.State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" || cs.RestartCount != 0 {
		t.Errorf("never: state %+v restarts %d, want terminated exit 3 reason Error, 0 restarts", cs.State, cs.RestartCount)
	}

	done := waitPod(t, ns, "onfailure", podStart, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	cs = containerStatus(done, "app")
	if term := cs.State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" || cs.RestartCount != 0 {
		t.Errorf("onfailure: state %+v restarts %d, want terminated exit 0 reason Completed, 0 restarts", cs.State, cs.RestartCount)
	}
	if podCondition(done, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("onfailure: Ready=%s after completion, want False", podCondition(done, corev1.PodReady))
	}
}

// TestJobLogs: a busybox Job completes and `kubectl logs job/NAME` prints
// what it wrote.
func TestJobLogs(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	tpl := pod("hello", busybox("echo hello from $(hostname); echo second line"), restartPolicy(corev1.RestartPolicyNever))
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr(int32(0)),
			Template:     corev1.PodTemplateSpec{Spec: tpl.Spec},
		},
	}
	if _, err := the.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, podStart, "job hello Complete", func() (bool, string) {
		j, err := the.client.BatchV1().Jobs(ns).Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return j.Status.Succeeded == 1, ""
			}
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				t.Fatalf("job failed: %s", c.Message)
			}
		}
		return false, "conditions: " + jobConditions(j)
	})
	out := mustKubectl(t, "logs", "-n", ns, "job/hello")
	if !strings.HasPrefix(out, "hello from hello-") || !strings.HasSuffix(out, "\nsecond line\n") {
		t.Errorf("kubectl logs job/hello printed %q, want \"hello from hello-…\\nsecond line\\n\"", out)
	}
}

func jobConditions(j *batchv1.Job) string {
	var out []string
	for _, c := range j.Status.Conditions {
		out = append(out, string(c.Type)+"="+string(c.Status))
	}
	return strings.Join(out, ",")
}

// TestServerNodeRole: the node of the server's own agent shows ROLES
// control-plane, as on kubeadm and k3s clusters (the server sets the label;
// a kubelet may not).
func TestServerNodeRole(t *testing.T) {
	t.Parallel()
	var out string
	eventually(t, podStart, "ROLES control-plane in kubectl get nodes", func() (bool, string) {
		out = kubectl(t, "get", "node", the.nodeName, "--no-headers").Stdout
		f := strings.Fields(out)
		return len(f) > 2 && f[2] == "control-plane", out
	})
}
