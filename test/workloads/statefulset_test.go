package workloads

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffdev/skiff/test/testenv"
)

// podLog records, from a watch on a namespace's pods, the order in which
// pods were created and began deleting, and which pods were Ready at each
// creation.
type podLog struct {
	mu              sync.Mutex // guards the following
	created         []string
	readyAtCreation map[string][]string // pod → pods Ready when it was created
	deleting        []string
}

func watchPods(t *testing.T, ns string) *podLog {
	t.Helper()
	w, err := testenv.Get(t).Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &podLog{readyAtCreation: map[string][]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ready := map[string]bool{}
		deleting := map[string]bool{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			l.mu.Lock()
			switch {
			case ev.Type == watch.Added:
				var r []string
				for n, ok := range ready {
					if ok {
						r = append(r, n)
					}
				}
				slices.Sort(r)
				l.created = append(l.created, p.Name)
				l.readyAtCreation[p.Name] = r
				deleting[p.Name] = false
			case ev.Type == watch.Deleted || p.DeletionTimestamp != nil:
				if !deleting[p.Name] {
					deleting[p.Name] = true
					l.deleting = append(l.deleting, p.Name)
				}
			}
			ready[p.Name] = ev.Type != watch.Deleted && p.DeletionTimestamp == nil && podReady(p)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return l
}

func (l *podLog) snapshot() (created []string, readyAt map[string][]string, deleting []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	readyAt = map[string][]string{}
	for k, v := range l.readyAtCreation {
		readyAt[k] = slices.Clone(v)
	}
	return slices.Clone(l.created), readyAt, slices.Clone(l.deleting)
}

// await waits until the watch has delivered at least created creations and
// deleting deletions: a list can show a state before the watch has delivered
// the events that led to it.
func (l *podLog) await(t *testing.T, created, deleting int) {
	t.Helper()
	testenv.Eventually(t, long, fmt.Sprintf("the watch to deliver %d creations and %d deletions", created, deleting), func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.created) >= created && len(l.deleting) >= deleting, nil
	})
}

// TestStatefulSetOrderedReady checks the default pod management: pods are
// created one at a time, each after its predecessors are Ready, keep their
// names when replaced, and are removed in reverse order.
func TestStatefulSetOrderedReady(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	log := watchPods(t, ns)
	sets := env.Client.AppsV1().StatefulSets(ns)
	if _, err := sets.Create(ctx, makeStatefulSet(ns, "db", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, long, "statefulset ready", func() (*appsv1.StatefulSet, error) { return sets.Get(ctx, "db", metav1.GetOptions{}) },
		func(s *appsv1.StatefulSet) bool {
			return s.Status.ReadyReplicas == 3 && s.Status.ObservedGeneration == s.Generation
		})
	pods := waitPods(t, ns, "app=db", "3 running pods", allRunning(3))

	log.await(t, 3, 0)
	created, readyAt, _ := log.snapshot()
	if want := []string{"db-0", "db-1", "db-2"}; !slices.Equal(created, want) {
		t.Fatalf("pods created in order %v, want %v", created, want)
	}
	for i, name := range created {
		for j := range i {
			if !slices.Contains(readyAt[name], fmt.Sprintf("db-%d", j)) {
				t.Fatalf("%s was created while db-%d was not Ready (Ready then: %v)", name, j, readyAt[name])
			}
		}
	}

	// A deleted pod comes back under the same name, as a new pod.
	old := map[string]string{}
	for _, p := range pods {
		old[p.Name] = string(p.UID)
	}
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, "db-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "app=db", "db-1 recreated", func(pods []corev1.Pod) bool {
		for _, p := range pods {
			if p.Name == "db-1" && string(p.UID) != old["db-1"] {
				return allRunning(3)(pods)
			}
		}
		return false
	})

	// Scale down removes the highest ordinals first.
	update(t, "scale statefulset", func() error {
		set, err := sets.Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return err
		}
		set.Spec.Replicas = ptr(int32(1))
		_, err = sets.Update(ctx, set, metav1.UpdateOptions{})
		return err
	})
	left := waitPods(t, ns, "app=db", "scaled down to db-0", allRunning(1))
	if left[0].Name != "db-0" || string(left[0].UID) != old["db-0"] {
		t.Fatalf("after scale down %s (uid %s) is left, want the original db-0", left[0].Name, left[0].UID)
	}
	log.await(t, 0, 3)
	_, _, deleting := log.snapshot()
	if want := []string{"db-1", "db-2", "db-1"}; !slices.Equal(deleting, want) {
		t.Fatalf("pods deleted in order %v, want %v (our db-1 deletion, then db-2 before db-1)", deleting, want)
	}
}

// TestStatefulSetParallel checks podManagementPolicy Parallel: all pods are
// created at once, without waiting for any to become Ready (here none can:
// no node matches their selector).
func TestStatefulSetParallel(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ns := namespace(t)
	set := makeStatefulSet(ns, "par", 3, nodeSelector("skiff.test/nowhere", ns))
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ns, "app=par", "3 pending pods", func(pods []corev1.Pod) bool { return len(pods) == 3 })
	var got []string
	for _, p := range pods {
		got = append(got, p.Name)
		if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
			t.Errorf("pod %s is %s on %q, want Pending and unscheduled", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}
	slices.Sort(got)
	if want := []string{"par-0", "par-1", "par-2"}; !slices.Equal(got, want) {
		t.Fatalf("pods %v, want %v", got, want)
	}

	// The contrast: OrderedReady stops at the first pod that is not Ready.
	ordered := makeStatefulSet(ns, "ord", 3, nodeSelector("skiff.test/nowhere", ns))
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(ctx, ordered, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "app=ord", "ord-0", func(pods []corev1.Pod) bool { return len(pods) == 1 && pods[0].Name == "ord-0" })
	waitFor(t, short, "ord status", func() (*appsv1.StatefulSet, error) {
		return env.Client.AppsV1().StatefulSets(ns).Get(ctx, "ord", metav1.GetOptions{})
	}, func(s *appsv1.StatefulSet) bool {
		return s.Status.ObservedGeneration == s.Generation && s.Status.Replicas == 1
	})
	if pods := mustPods(t, ns, "app=ord"); len(pods) != 1 {
		t.Fatalf("OrderedReady created %d pods while the first is not Ready: %s", len(pods), names(pods))
	}
}
