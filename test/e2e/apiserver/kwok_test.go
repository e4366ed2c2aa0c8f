package apiserver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// testKwok runs kwok (sigs.k8s.io/kwok, built unmodified from the module
// proxy by `make test` into bin/kwok, named by KWOK_BIN) against the server
// with the "fast" stages of its module: a fake Node it manages becomes Ready, and a
// Deployment's pods scheduled onto it run and go away with it, as kwok
// behaves against upstream Kubernetes.
func testKwok(t *testing.T, srv *e2eutil.Server) {
	bin := os.Getenv("KWOK_BIN")
	if bin == "" {
		t.Fatal("KWOK_BIN is not set: `make test` builds bin/kwok and sets it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logf, err := os.Create(filepath.Join(t.TempDir(), "kwok.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Beside it, the stages its module ships (`make test` writes them).
	stages := filepath.Join(filepath.Dir(bin), "kwok-stages.yaml")
	kwok := exec.CommandContext(ctx, bin, "--kubeconfig", srv.Kubeconfig, "--config", stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=10.254.0.1", "--cidr=10.254.0.0/24")
	kwok.Stdout, kwok.Stderr = logf, logf
	if err := kwok.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = kwok.Process.Kill()
		_ = kwok.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logf.Name())
			t.Logf("kwok's log:\n%s", tail(string(data), 30))
		}
	}()

	client := srv.Client()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "kwok-node-0",
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kwok.x-k8s.io/node", Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{})
	waitFor(t, time.Minute, "kwok to make its node Ready", func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})

	ns := "kwok"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	labels := map[string]string{"app": "fake"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "fake"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"type": "kwok"},
					Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers:   []corev1.Container{{Name: "app", Image: "fake-image"}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "three pods Running on the kwok node with pod IPs", func() bool {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=fake"})
		if err != nil || len(pods.Items) != 3 {
			return false
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != node.Name || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				return false
			}
		}
		return true
	})
	dep, err := client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the Deployment to report 3 available replicas", func() bool {
		dep, err = client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		return err == nil && dep.Status.AvailableReplicas == 3
	})
	if err := client.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "kwok to let the pods go", func() bool {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=fake"})
		return err == nil && len(pods.Items) == 0
	})
}
