package workloads

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiffdev/skiff/internal/sim"
	"github.com/skiffdev/skiff/test/testenv"
)

var nodesAvailable = regexp.MustCompile(`^0/(\d+) nodes are available:`)

// TestUnschedulableUntilNodeJoins checks that a pod too big for every node
// stays Pending with the scheduler's explanation, and is scheduled by
// itself once a node big enough joins.
func TestUnschedulableUntilNodeJoins(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	// Every other node in this package has 32 CPUs.
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, makePod(ns, "big", cpu("48")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitFor(t, long, "pod big marked unschedulable", func() (*corev1.Pod, error) {
		return env.Client.CoreV1().Pods(ns).Get(ctx, "big", metav1.GetOptions{})
	}, func(p *corev1.Pod) bool {
		c := podCondition(p, corev1.PodScheduled)
		return c != nil && c.Status == corev1.ConditionFalse
	})
	if c := podCondition(pod, corev1.PodScheduled); c.Reason != corev1.PodReasonUnschedulable || pod.Status.Phase != corev1.PodPending || pod.Spec.NodeName != "" {
		t.Fatalf("pod is %s on %q with PodScheduled %+v; want Pending, unbound, reason Unschedulable", pod.Status.Phase, pod.Spec.NodeName, c)
	}

	// The scheduler explains itself in a FailedScheduling event.
	var ev corev1.Event
	testenv.Eventually(t, long, "FailedScheduling event naming Insufficient cpu", func() (bool, error) {
		l, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.name": "big", "reason": "FailedScheduling",
		}.AsSelector().String()})
		if err != nil {
			return false, err
		}
		for _, e := range l.Items {
			if nodesAvailable.MatchString(e.Message) && strings.Contains(e.Message, "Insufficient cpu") {
				ev = e
				return true, nil
			}
		}
		if len(l.Items) > 0 {
			return false, fmt.Errorf("last event: %q", l.Items[len(l.Items)-1].Message)
		}
		return false, nil
	})
	if ev.Type != corev1.EventTypeWarning {
		t.Fatalf("FailedScheduling event has type %s, want Warning", ev.Type)
	}
	m := nodesAvailable.FindStringSubmatch(ev.Message)
	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(m[1]); n < 3 || n > len(nodes.Items) {
		t.Fatalf("event counts %d nodes; the cluster has %d, at least the 3 base nodes", n, len(nodes.Items))
	}

	big := sim.Config{Nodes: 1, NamePrefix: nodePrefix(ns, "big"), CPU: resource.MustParse("64")}
	stop := startSim(t, big)
	// The node would take the next run's pod (go test -count): gone with the test.
	t.Cleanup(func() {
		stop()
		if err := env.Client.CoreV1().Nodes().Delete(ctx, big.NamePrefix+"0", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete node: %v", err)
		}
	})
	pod = waitFor(t, long, "pod big running on the new node", func() (*corev1.Pod, error) {
		return env.Client.CoreV1().Pods(ns).Get(ctx, "big", metav1.GetOptions{})
	}, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if pod.Spec.NodeName != big.NamePrefix+"0" {
		t.Fatalf("pod big runs on %s, want the new node %s0", pod.Spec.NodeName, big.NamePrefix)
	}
}

// TestTaintsAndNodeSelector checks that a pod lands only on a node whose
// labels its nodeSelector matches and whose taints it tolerates.
func TestTaintsAndNodeSelector(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ns := namespace(t)
	label, taintKey := "skiff.test/pool", "skiff.test/dedicated-"+ns
	cfg := sim.Config{Nodes: 1, NamePrefix: nodePrefix(ns, "gpu"), Labels: map[string]string{label: ns},
		Taints: []corev1.Taint{{Key: taintKey, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}}
	startSim(t, cfg)
	node := cfg.NamePrefix + "0"

	pods := env.Client.CoreV1().Pods(ns)
	for _, p := range []*corev1.Pod{
		makePod(ns, "tolerates", nodeSelector(label, ns), tolerate(taintKey)),
		makePod(ns, "intolerant", nodeSelector(label, ns)),
		makePod(ns, "nowhere", nodeSelector(label, "no-such-pool"), tolerate(taintKey)),
	} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) func() (*corev1.Pod, error) {
		return func() (*corev1.Pod, error) { return pods.Get(ctx, name, metav1.GetOptions{}) }
	}
	p := waitFor(t, long, "pod tolerates running", get("tolerates"), func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if p.Spec.NodeName != node {
		t.Fatalf("pod tolerates runs on %s, want %s", p.Spec.NodeName, node)
	}
	for name, want := range map[string]string{
		"intolerant": "had untolerated taint",
		"nowhere":    "didn't match Pod's node affinity/selector",
	} {
		p := waitFor(t, long, "pod "+name+" unschedulable", get(name), func(p *corev1.Pod) bool {
			c := podCondition(p, corev1.PodScheduled)
			return c != nil && c.Status == corev1.ConditionFalse
		})
		c := podCondition(p, corev1.PodScheduled)
		if c.Reason != corev1.PodReasonUnschedulable || !strings.Contains(c.Message, want) || p.Spec.NodeName != "" {
			t.Errorf("pod %s: PodScheduled %s %q on %q; want Unschedulable naming %q", name, c.Reason, c.Message, p.Spec.NodeName, want)
		}
	}
}
