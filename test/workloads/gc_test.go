package workloads

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffdev/skiff/test/testenv"
)

// TestGarbageCollection deletes a Deployment with each propagation policy
// and checks what becomes of its ReplicaSet and pods.
func TestGarbageCollection(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)

	setup := func(t *testing.T) (ns string) {
		ns = namespace(t)
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, makeDeployment(ns, "web", 2), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPods(t, ns, "app=web", "2 running pods", allRunning(2))
		return ns
	}
	replicaSets := func(t *testing.T, ns string) ([]appsv1.ReplicaSet, error) {
		l, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	gone := func(t *testing.T, ns string) {
		t.Helper()
		waitFor(t, long, "ReplicaSets and pods gone", func() (int, error) {
			rss, err := replicaSets(t, ns)
			if err != nil {
				return 0, err
			}
			pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			return len(rss) + len(pods.Items), nil
		}, func(n int) bool { return n == 0 })
	}

	t.Run("background", func(t *testing.T) {
		t.Parallel()
		ns := setup(t)
		policy := metav1.DeletePropagationBackground
		if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		// The owner goes at once; its dependents follow.
		if _, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("deployment still there after a background delete: %v", err)
		}
		gone(t, ns)
	})

	t.Run("foreground", func(t *testing.T) {
		t.Parallel()
		ns := setup(t)
		w, err := env.Client.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "web").String()})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		policy := metav1.DeletePropagationForeground
		if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		// The owner stays, marked for foreground deletion, until its
		// dependents are gone; only then is it deleted.
		sawFinalizer := false
		timeout := time.After(long)
		for deleted := false; !deleted; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					t.Fatal("watch closed")
				}
				d, _ := ev.Object.(*appsv1.Deployment)
				switch {
				case d == nil:
				case ev.Type == watch.Deleted:
					deleted = true
				case d.DeletionTimestamp != nil && slices.Contains(d.Finalizers, metav1.FinalizerDeleteDependents):
					sawFinalizer = true
				}
			case <-timeout:
				t.Fatal("deployment not deleted in time")
			}
		}
		if !sawFinalizer {
			t.Error("never saw the deployment waiting with the foregroundDeletion finalizer")
		}
		if rss, err := replicaSets(t, ns); err != nil || len(rss) != 0 {
			t.Fatalf("deployment deleted while %d ReplicaSets remain (%v)", len(rss), err)
		}
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 0 {
			t.Fatalf("deployment deleted while %d pods remain (%v)", len(pods.Items), err)
		}
	})

	t.Run("orphan", func(t *testing.T) {
		t.Parallel()
		ns := setup(t)
		before := mustPods(t, ns, "app=web")
		policy := metav1.DeletePropagationOrphan
		if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		// The owner waits, with the orphan finalizer, for the garbage
		// collector to cut its dependents loose, then goes.
		waitFor(t, long, "deployment gone", func() (error, error) {
			_, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			return err, nil
		}, apierrors.IsNotFound)
		rss, err := replicaSets(t, ns)
		if err != nil || len(rss) != 1 || len(rss[0].OwnerReferences) != 0 {
			t.Fatalf("after the deployment went: %d ReplicaSets (%v), want 1 without owner references", len(rss), err)
		}
		// The orphaned ReplicaSet keeps its pods running, untouched.
		time.Sleep(2 * time.Second)
		after := mustPods(t, ns, "app=web")
		if !allRunning(2)(after) || *rss[0].Spec.Replicas != 2 {
			t.Fatalf("after orphaning: %s, replicas %d; want the 2 pods still running", names(after), *rss[0].Spec.Replicas)
		}
		for i := range after {
			if after[i].UID != before[0].UID && after[i].UID != before[1].UID {
				t.Fatalf("pod %s is new: orphaning replaced pods", after[i].Name)
			}
		}
	})
}

// TestNamespaceDeletion checks that deleting a namespace removes what is
// in it, pods included, and then the namespace itself.
func TestNamespaceDeletion(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, makeDeployment(ns, "web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "settings"}, Data: map[string]string{"k": "v"}}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "app=web", "2 running pods", allRunning(2))

	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil && got.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("namespace phase %s right after delete, want Terminating", got.Status.Phase)
	}
	late := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, late, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("creating in a terminating namespace: %v, want Forbidden", err)
	}
	waitFor(t, long, "namespace gone", func() (error, error) {
		_, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err, nil
	}, apierrors.IsNotFound)
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("%d pods left after the namespace went (%v)", len(pods.Items), err)
	}
}
