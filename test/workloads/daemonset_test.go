package workloads

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/sim"
	"github.com/skiffdev/skiff/test/testenv"
)

// TestDaemonSet checks that a DaemonSet runs one pod on every node its
// nodeSelector picks, skips nodes whose taints it does not tolerate, and
// follows a new toleration onto them.
func TestDaemonSet(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ns := namespace(t)
	label := "skiff.test/ds"
	taintKey := "skiff.test/dedicated-" + ns

	// Three plain nodes with the label, one labelled but tainted, one without the label.
	plain := sim.Config{Nodes: 3, NamePrefix: nodePrefix(ns, "plain"), Labels: map[string]string{label: ns}}
	tainted := sim.Config{Nodes: 1, NamePrefix: nodePrefix(ns, "tainted"), Labels: map[string]string{label: ns},
		Taints: []corev1.Taint{{Key: taintKey, Value: "x", Effect: corev1.TaintEffectNoSchedule}},
		CPU:    resource.MustParse("8")}
	other := sim.Config{Nodes: 1, NamePrefix: nodePrefix(ns, "other")}
	for _, c := range []sim.Config{plain, tainted, other} {
		startSim(t, c)
	}
	plainNodes := []string{plain.NamePrefix + "0", plain.NamePrefix + "1", plain.NamePrefix + "2"}
	taintedNode := tainted.NamePrefix + "0"

	sets := env.Client.AppsV1().DaemonSets(ns)
	if _, err := sets.Create(ctx, makeDaemonSet(ns, "agent", nodeSelector(label, ns)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	onNodes := func(want []string) func([]corev1.Pod) bool {
		return func(pods []corev1.Pod) bool {
			var got []string
			for _, p := range pods {
				got = append(got, p.Spec.NodeName)
			}
			slices.Sort(got)
			return slices.Equal(got, want) && allRunning(len(want))(pods)
		}
	}
	waitPods(t, ns, "app=agent", "one running pod on each plain node", onNodes(plainNodes))
	waitFor(t, long, "daemonset status", func() (*appsv1.DaemonSet, error) { return sets.Get(ctx, "agent", metav1.GetOptions{}) },
		func(d *appsv1.DaemonSet) bool {
			return d.Status.DesiredNumberScheduled == 3 && d.Status.NumberReady == 3 && d.Status.NumberAvailable == 3
		})

	// Tolerating the taint adds the tainted node.
	update(t, "add toleration", func() error {
		d, err := sets.Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return err
		}
		tolerate(taintKey)(&d.Spec.Template)
		_, err = sets.Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	want := append(slices.Clone(plainNodes), taintedNode)
	slices.Sort(want)
	waitPods(t, ns, "app=agent", "one running pod on each labelled node, tainted one included", func(pods []corev1.Pod) bool {
		for _, p := range pods {
			if len(p.Spec.Tolerations) == 0 || !hasToleration(p, taintKey) {
				return false // an old pod not yet replaced
			}
		}
		return onNodes(want)(pods)
	})
	waitFor(t, long, "daemonset status with 4 nodes", func() (*appsv1.DaemonSet, error) { return sets.Get(ctx, "agent", metav1.GetOptions{}) },
		func(d *appsv1.DaemonSet) bool {
			return d.Status.DesiredNumberScheduled == 4 && d.Status.NumberReady == 4 && d.Status.UpdatedNumberScheduled == 4
		})
}

func hasToleration(p corev1.Pod, key string) bool {
	for _, tol := range p.Spec.Tolerations {
		if tol.Key == key {
			return true
		}
	}
	return false
}
