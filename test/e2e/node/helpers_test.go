package node

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// Images the agent imports at start (internal/images).
const (
	testhostImage = "localhost/skiff/testhost:latest"
	busyboxImage  = "localhost/skiff/busybox:latest"
)

// Timeouts: bounded, but generous for a shared two-core machine.
const (
	podStart = 60 * time.Second
	slow     = 90 * time.Second
)

// namespace creates a namespace for the test; it is deleted (without
// waiting) when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + randomSuffix()[:5]
	ctx := context.Background()
	_, err := the.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pods in %s at the end:\n%s", name, kubectl(t, "get", "pods", "-n", name, "-o", "wide").Stdout)
			t.Logf("events in %s at the end:\n%s", name, kubectl(t, "get", "events", "-n", name, "--sort-by", ".lastTimestamp").Stdout)
		}
		_ = the.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// The service account controller adds "default" shortly after; pods
	// are refused until then.
	eventually(t, 30*time.Second, "service account default in "+name, func() (bool, string) {
		_, err := the.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return name
}

// --- pods ---

// podOpt changes a pod before it is created.
type podOpt func(*corev1.Pod)

// pod is a pod with one container "app"; by default it runs testhost netexec.
func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:    "app",
				Image:   testhostImage,
				Command: []string{"/testhost", "netexec", "--http-port", "8080"},
			}},
			TerminationGracePeriodSeconds: ptr(int64(2)),
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// busybox runs the busybox image with sh -c script.
func busybox(script string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = busyboxImage
		p.Spec.Containers[0].Command = []string{"sh", "-c", script}
	}
}

// command replaces the first container's command.
func command(argv ...string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Command = argv }
}

func restartPolicy(r corev1.RestartPolicy) podOpt {
	return func(p *corev1.Pod) { p.Spec.RestartPolicy = r }
}

func label(k, v string) podOpt {
	return func(p *corev1.Pod) { p.Labels[k] = v }
}

// container changes the first container.
func container(f func(c *corev1.Container)) podOpt {
	return func(p *corev1.Pod) { f(&p.Spec.Containers[0]) }
}

func createPod(t *testing.T, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	p.Namespace = ns
	out, err := the.client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, p.Name, err)
	}
	return out
}

// waitPod polls the pod until ok holds and returns it; on timeout the test
// fails with the pod's last status.
func waitPod(t *testing.T, ns, name string, d time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	eventually(t, d, "pod "+ns+"/"+name+" "+what, func() (bool, string) {
		p, err := the.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		last = p
		return ok(p), statusSummary(p)
	})
	return last
}

// waitRunning waits until the pod is Running and Ready.
func waitRunning(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	return waitPod(t, ns, name, podStart, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
}

// waitGone waits until the pod object no longer exists.
func waitGone(t *testing.T, ns, name string, d time.Duration) {
	t.Helper()
	eventually(t, d, "pod "+ns+"/"+name+" deleted", func() (bool, string) {
		p, err := the.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, statusSummary(p)
	})
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := the.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// containerStatus returns the status of the named (init) container.
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// waitingReason is the container's state.waiting.reason, or "".
func waitingReason(p *corev1.Pod, name string) string {
	if cs := containerStatus(p, name); cs != nil && cs.State.Waiting != nil {
		return cs.State.Waiting.Reason
	}
	return ""
}

// statusSummary is a one-line account of a pod's status for failure messages.
func statusSummary(p *corev1.Pod) string {
	st := struct {
		Phase      corev1.PodPhase          `json:"phase"`
		Conditions []string                 `json:"conditions"`
		Init       []corev1.ContainerStatus `json:"init,omitempty"`
		Containers []corev1.ContainerStatus `json:"containers,omitempty"`
	}{Phase: p.Status.Phase, Init: p.Status.InitContainerStatuses, Containers: p.Status.ContainerStatuses}
	for _, c := range p.Status.Conditions {
		st.Conditions = append(st.Conditions, string(c.Type)+"="+string(c.Status))
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// eventReasons lists the reasons of the events about an object (by name).
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	list, err := the.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
	})
	if err != nil {
		t.Fatalf("list events of %s/%s: %v", ns, name, err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	sort.Strings(out)
	return out
}

// waitEvent waits for an event with reason about the object and returns its
// message.
func waitEvent(t *testing.T, ns, name, reason string, d time.Duration) string {
	t.Helper()
	var msg string
	eventually(t, d, fmt.Sprintf("event %s about %s/%s", reason, ns, name), func() (bool, string) {
		list, err := the.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Reason == reason {
				msg = e.Message
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, "events so far: " + strings.Join(seen, ",")
	})
	return msg
}

// --- kubectl ---

// kubectl runs the embedded kubectl against the package's cluster.
func kubectl(t *testing.T, args ...string) e2eutil.Result {
	t.Helper()
	return embedded(t).Run(t, the.kubeconfig, "", args...)
}

// mustKubectl runs the embedded kubectl and fails the test unless it exits 0.
func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := kubectl(t, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// execIn runs a command in a pod's container with the embedded kubectl and
// returns its stdout; it fails the test unless it exits 0.
func execIn(t *testing.T, ns, podName, ctr string, argv ...string) string {
	t.Helper()
	args := []string{"exec", "-n", ns, podName}
	if ctr != "" {
		args = append(args, "-c", ctr)
	}
	return mustKubectl(t, append(append(args, "--"), argv...)...)
}

func embedded(t *testing.T) e2eutil.Kubectl {
	t.Helper()
	return e2eutil.Kubectls(t)[0]
}

// --- waiting ---

// eventually polls cond every 250 ms until it reports true, and fails the
// test after d with cond's last word on why not.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, d, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

// deref is *p, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
