package workloads

import (
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffdev/skiff/test/testenv"
)

// TestDeployment walks one Deployment through what users do with one:
// create, roll out a new image, roll back, keep a bounded history, scale.
func TestDeployment(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	deployments := env.Client.AppsV1().Deployments(ns)

	d := rollingUpdate(makeDeployment(ns, "web", 4, image("app:v1")), 1, 0)
	d.Spec.RevisionHistoryLimit = ptr(int32(1))
	if _, err := deployments.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	complete := func(img string) func(*appsv1.Deployment) bool {
		return func(d *appsv1.Deployment) bool {
			p := deploymentCondition(d, appsv1.DeploymentProgressing)
			return d.Status.ObservedGeneration == d.Generation && d.Spec.Template.Spec.Containers[0].Image == img &&
				d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas &&
				d.Status.Replicas == *d.Spec.Replicas && p != nil && p.Reason == "NewReplicaSetAvailable"
		}
	}
	got := waitDeployment(t, ns, "web", "available", complete("app:v1"))
	if c := deploymentCondition(got, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "MinimumReplicasAvailable" {
		t.Fatalf("Available condition = %+v, want True MinimumReplicasAvailable", c)
	}
	if c := deploymentCondition(got, appsv1.DeploymentProgressing); c.Status != corev1.ConditionTrue {
		t.Fatalf("Progressing condition = %+v, want True", c)
	}
	waitPods(t, ns, "app=web", "4 running v1 pods", allRunning(4))
	v1RS := replicaSetFor(t, ns, "app:v1")

	// Rolling update: watch every ReplicaSet change and keep the peak of
	// the desired replicas summed over all of them.
	peak := watchReplicaSetSum(t, ns)
	setImage(t, ns, "web", "app:v2")
	waitDeployment(t, ns, "web", "rolled out to v2", complete("app:v2"))
	waitPods(t, ns, "app=web", "4 running pods", allRunning(4))
	if p := peak(); p != 5 {
		t.Fatalf("replicas summed over ReplicaSets peaked at %d during the rollout; want exactly replicas+maxSurge = 5", p)
	}
	for _, p := range mustPods(t, ns, "app=web") {
		if img := p.Spec.Containers[0].Image; img != "app:v2" {
			t.Fatalf("pod %s runs %s after the rollout, want app:v2", p.Name, img)
		}
	}

	// Roll back by putting the old template back: the old ReplicaSet is
	// scaled up again, under its old name, as the newest revision.
	setImage(t, ns, "web", "app:v1")
	waitDeployment(t, ns, "web", "rolled back to v1", complete("app:v1"))
	back := replicaSetFor(t, ns, "app:v1")
	if back.Name != v1RS.Name {
		t.Fatalf("rollback made ReplicaSet %s, want the old %s reused", back.Name, v1RS.Name)
	}
	if rev := back.Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Fatalf("rolled-back ReplicaSet has revision %q, want 3", rev)
	}

	// revisionHistoryLimit 1: after a third template, one old ReplicaSet
	// (the newest old one, v1) is kept besides the current one.
	setImage(t, ns, "web", "app:v3")
	waitDeployment(t, ns, "web", "rolled out to v3", complete("app:v3"))
	waitFor(t, long, "old ReplicaSets pruned to 1", func() ([]appsv1.ReplicaSet, error) {
		l, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}, func(rss []appsv1.ReplicaSet) bool {
		if len(rss) != 2 {
			return false
		}
		imgs := map[string]bool{}
		for _, rs := range rss {
			imgs[rs.Spec.Template.Spec.Containers[0].Image] = true
		}
		return imgs["app:v3"] && imgs["app:v1"]
	})

	// Scale through the scale subresource, as kubectl scale does.
	for _, n := range []int32{6, 2} {
		scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
		if _, err := deployments.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		waitDeployment(t, ns, "web", "scaled", func(d *appsv1.Deployment) bool {
			return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n && d.Status.Replicas == n
		})
		waitPods(t, ns, "app=web", "scaled pods running", allRunning(int(n)))
	}
}

// TestReplicaSet checks that a ReplicaSet keeps its count: a deleted pod is
// replaced, and pods get addresses from their node's pod CIDR.
func TestReplicaSet(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	rss := env.Client.AppsV1().ReplicaSets(ns)
	if _, err := rss.Create(ctx, makeReplicaSet(ns, "rs", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ns, "app=rs", "3 running pods", allRunning(3))
	waitFor(t, long, "readyReplicas 3", func() (*appsv1.ReplicaSet, error) { return rss.Get(ctx, "rs", metav1.GetOptions{}) },
		func(rs *appsv1.ReplicaSet) bool {
			return rs.Status.ReadyReplicas == 3 && rs.Status.AvailableReplicas == 3
		})
	for _, p := range pods {
		node, err := env.Client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.PodCIDR != "" && !cidrContains(t, node.Spec.PodCIDR, p.Status.PodIP) {
			t.Errorf("pod %s has IP %s outside its node's pod CIDR %s", p.Name, p.Status.PodIP, node.Spec.PodCIDR)
		}
		if p.Status.HostIP == "" || p.Status.StartTime == nil || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil {
			t.Errorf("pod %s status lacks what a kubelet reports: %+v", p.Name, p.Status)
		}
	}

	victim := pods[0].Name
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "app=rs", "the deleted pod replaced", func(pods []corev1.Pod) bool {
		for _, p := range pods {
			if p.Name == victim {
				return false
			}
		}
		return allRunning(3)(pods)
	})

	update(t, "scale replicaset", func() error {
		rs, err := rss.Get(ctx, "rs", metav1.GetOptions{})
		if err != nil {
			return err
		}
		rs.Spec.Replicas = ptr(int32(1))
		_, err = rss.Update(ctx, rs, metav1.UpdateOptions{})
		return err
	})
	waitPods(t, ns, "app=rs", "scaled down to 1", allRunning(1))
}

// watchReplicaSetSum watches the namespace's ReplicaSets until the test ends
// and returns a function giving the peak of their spec.replicas sum.
func watchReplicaSetSum(t *testing.T, ns string) (peak func() int32) {
	t.Helper()
	w, err := testenv.Get(t).Client.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex // guards top
		top  int32
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		desired := map[string]int32{}
		for ev := range w.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(desired, rs.Name)
			} else {
				desired[rs.Name] = *rs.Spec.Replicas
			}
			var sum int32
			for _, n := range desired {
				sum += n
			}
			mu.Lock()
			top = max(top, sum)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return func() int32 {
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}

func setImage(t *testing.T, ns, name, img string) {
	t.Helper()
	deployments := testenv.Get(t).Client.AppsV1().Deployments(ns)
	update(t, "set image "+img, func() error {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = img
		_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
}

// replicaSetFor is the namespace's ReplicaSet whose pods run img.
func replicaSetFor(t *testing.T, ns, img string) *appsv1.ReplicaSet {
	t.Helper()
	l, err := testenv.Get(t).Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		if l.Items[i].Spec.Template.Spec.Containers[0].Image == img {
			return &l.Items[i]
		}
	}
	t.Fatalf("no ReplicaSet runs %s", img)
	return nil
}

func mustPods(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	pods, err := livePods(t, ns, selector)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}
