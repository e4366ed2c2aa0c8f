package workloads

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/sim"
	"github.com/skiffdev/skiff/test/testenv"
)

// TestNodeLoss stops the Sim behind a node, as if the machine died, and
// checks the node lifecycle: Ready goes Unknown, the node is tainted
// unreachable, and its Deployment pods are evicted and replaced on another
// node. The timers are shortened in TestMain.
func TestNodeLoss(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ns := namespace(t)
	// Both nodes are tainted for this test alone, so no other test's pods
	// land on the node that is lost.
	taintKey := "skiff.test/owner-" + ns
	label := "skiff.test/loss"
	nodeCfg := func(role string) sim.Config {
		return sim.Config{Nodes: 1, NamePrefix: nodePrefix(ns, role), Labels: map[string]string{label: ns},
			Taints: []corev1.Taint{{Key: taintKey, Effect: corev1.TaintEffectNoSchedule}}}
	}
	doomedCfg, spareCfg := nodeCfg("doomed"), nodeCfg("spare")
	doomed, spare := doomedCfg.NamePrefix+"0", spareCfg.NamePrefix+"0"
	stop := startSim(t, doomedCfg)
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Nodes().Delete(ctx, doomed, metav1.DeleteOptions{})
	})

	d := makeDeployment(ns, "web", 2, nodeSelector(label, ns), tolerate(taintKey))
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "app=web", "2 running pods on the doomed node", allRunning(2))
	for _, p := range before {
		if p.Spec.NodeName != doomed {
			t.Fatalf("pod %s on %s, want %s (the only node it may use)", p.Name, p.Spec.NodeName, doomed)
		}
	}

	startSim(t, spareCfg)
	stop()

	waitNode(t, doomed, "Ready Unknown and tainted unreachable", func(n *corev1.Node) bool {
		if nodeReady(n) != corev1.ConditionUnknown {
			return false
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute {
				return true
			}
		}
		return false
	})
	after := waitPods(t, ns, "app=web", "2 replacement pods running on the spare node", func(pods []corev1.Pod) bool {
		for _, p := range pods {
			if p.Spec.NodeName != spare {
				return false
			}
		}
		return allRunning(2)(pods)
	})
	// The evicted pods are marked for deletion; with no kubelet on the lost
	// node to confirm it, they stay Terminating.
	for _, old := range before {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, old.Name, metav1.GetOptions{})
		if err != nil {
			continue // already removed: fine
		}
		if p.DeletionTimestamp == nil {
			t.Errorf("evicted pod %s has no deletionTimestamp", p.Name)
		}
	}
	t.Logf("replacements: %s", names(after))
}
