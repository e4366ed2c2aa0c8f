// Package rollout drives Deployments through real kubectl against `skiff
// server` with simulated nodes (`skiff sim`): apply, rollout status, set
// image, history, undo, scale, drain and uncordon, namespace deletion; and a
// rollout that survives kill -9 of the server.
package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

func TestMain(m *testing.M) { e2eutil.Main(m) }

// startSim runs `skiff sim` against the server until the test ends.
func startSim(t *testing.T, s *e2eutil.Server, nodes int) {
	t.Helper()
	e2eutil.StartSim(t, s.Kubeconfig, nodes, "node-")
	client := s.Client()
	waitFor(t, 2*time.Minute, "simulated nodes schedulable", func() bool {
		list, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil || len(list.Items) < nodes {
			return false
		}
		for _, n := range list.Items {
			for _, taint := range n.Spec.Taints {
				if taint.Key == "node.kubernetes.io/not-ready" {
					return false
				}
			}
		}
		return true
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: localhost/skiff/testhost:v1
        resources: {requests: {cpu: 100m, memory: 64Mi}}
`

func TestKubectlRolloutWorkflow(t *testing.T) {
	s := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	startSim(t, s, 3)
	for _, k := range e2eutil.Kubectls(t) {
		t.Run(k.Name, func(t *testing.T) {
			ns := "rollout-" + strings.ReplaceAll(k.Name, ".", "-")
			run := func(stdin string, args ...string) string {
				t.Helper()
				r := k.Run(t, s.Kubeconfig, stdin, args...)
				if r.Code != 0 {
					t.Fatalf("kubectl %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
				}
				return r.Stdout
			}
			run("", "create", "namespace", ns)
			if out := run(fmt.Sprintf(deployment, ns), "apply", "-f", "-"); !strings.Contains(out, "deployment.apps/web created") {
				t.Errorf("apply: %s", out)
			}
			if out := run("", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s"); !strings.Contains(out, `deployment "web" successfully rolled out`) {
				t.Errorf("rollout status: %s", out)
			}
			run("", "-n", ns, "set", "image", "deployment/web", "web=localhost/skiff/testhost:v2")
			run("", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
			history := run("", "-n", ns, "rollout", "history", "deployment/web")
			if !strings.Contains(history, "REVISION") || !strings.Contains(history, "1 ") || !strings.Contains(history, "2 ") {
				t.Errorf("rollout history lacks revisions 1 and 2:\n%s", history)
			}
			run("", "-n", ns, "rollout", "undo", "deployment/web")
			run("", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
			image := run("", "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
			if image != "localhost/skiff/testhost:v1" {
				t.Errorf("after undo the image is %q, want v1", image)
			}
			run("", "-n", ns, "scale", "deployment/web", "--replicas=6")
			run("", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
			wide := run("", "-n", ns, "get", "deployment", "web", "-o", "wide")
			if !strings.Contains(wide, "6/6") {
				t.Errorf("get -o wide after scale:\n%s", wide)
			}

			// Drain a node holding pods: they move, the node is cordoned; uncordon.
			pods, err := s.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil || len(pods.Items) == 0 {
				t.Fatalf("list pods: %v", err)
			}
			node := pods.Items[0].Spec.NodeName
			out := run("", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s")
			if !strings.Contains(out, "drained") {
				t.Errorf("drain: %s", out)
			}
			run("", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
			waitFor(t, time.Minute, "no web pods left on the drained node", func() bool {
				list, err := s.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
				if err != nil {
					return false
				}
				for _, p := range list.Items {
					if p.Spec.NodeName == node {
						return false
					}
				}
				return true
			})
			if nodes := run("", "get", "node", node); !strings.Contains(nodes, "SchedulingDisabled") {
				t.Errorf("drained node not cordoned:\n%s", nodes)
			}
			run("", "uncordon", node)
			if nodes := run("", "get", "node", node); strings.Contains(nodes, "SchedulingDisabled") {
				t.Errorf("node still cordoned after uncordon:\n%s", nodes)
			}

			run("", "delete", "namespace", ns, "--timeout=120s")
			waitFor(t, 2*time.Minute, "namespace gone", func() bool {
				_, err := s.Client().CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
				return err != nil
			})
		})
	}
}

// TestRolloutSurvivesServerKill kills the server with SIGKILL in the middle of
// a rolling update; started again on the same data dir, it finishes the
// rollout with exactly the desired replicas and never more than
// replicas+maxSurge pods at any time it was observed.
func TestRolloutSurvivesServerKill(t *testing.T) {
	s := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	startSim(t, s, 3)
	k := e2eutil.Kubectls(t)[0]
	ns := "survive"
	k.Run(t, s.Kubeconfig, "", "create", "namespace", ns)
	manifest := strings.Replace(fmt.Sprintf(deployment, ns), "replicas: 4", "replicas: 10", 1)
	if r := k.Run(t, s.Kubeconfig, manifest, "apply", "-f", "-"); r.Code != 0 {
		t.Fatalf("apply: %s", r.Stderr)
	}
	if r := k.Run(t, s.Kubeconfig, "", "-n", ns, "rollout", "status", "deployment/web", "--timeout=180s"); r.Code != 0 {
		t.Fatalf("rollout status: %s", r.Stderr)
	}
	// Slow the update (minReadySeconds) so the kill lands mid-rollout.
	if r := k.Run(t, s.Kubeconfig, "", "-n", ns, "patch", "deployment/web", "--type=merge",
		"-p", `{"spec":{"minReadySeconds":2,"template":{"spec":{"containers":[{"name":"web","image":"localhost/skiff/testhost:v2"}]}}}}`); r.Code != 0 {
		t.Fatalf("patch: %s", r.Stderr)
	}
	maxSeen := 0
	count := func() (total, updated int) {
		list, err := s.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return -1, -1
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
				continue
			}
			total++
			if p.Spec.Containers[0].Image == "localhost/skiff/testhost:v2" {
				updated++
			}
		}
		return total, updated
	}
	waitFor(t, time.Minute, "rollout under way", func() bool {
		total, updated := count()
		maxSeen = max(maxSeen, total)
		return updated >= 2 && updated < 10
	})
	s.Kill()
	s.Start()
	waitFor(t, 3*time.Minute, "rollout finished after the restart", func() bool {
		total, updated := count()
		maxSeen = max(maxSeen, total)
		d, err := s.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		return err == nil && total == 10 && updated == 10 && d.Status.UpdatedReplicas == 10 &&
			d.Status.AvailableReplicas == 10 && d.Status.ObservedGeneration == d.Generation
	})
	if maxSeen > 11 {
		t.Errorf("saw %d live pods during the rollout, more than replicas+maxSurge (11)", maxSeen)
	}
}
