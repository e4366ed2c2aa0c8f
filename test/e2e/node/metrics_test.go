package node

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// burner is a Deployment whose pods keep a CPU busy up to their limit
// (150m, against a request of 100m), or run the script given. It leaves
// the replicas to the HPA (applying it again does not reset them).
const burner = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  selector:
    matchLabels: {app: burner}
  template:
    metadata:
      labels: {app: burner}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: %s
        imagePullPolicy: Never
        command: ["sh", "-c", "%s"]
        resources:
          requests: {cpu: 100m, memory: 16Mi}
          limits: {cpu: 150m, memory: 32Mi}
`

// hpa scales burner between 1 and 3 replicas on CPU utilization, without
// the default five minutes of stabilization before scaling down.
const hpa = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
`

// TestKubectlTopAndHPA: metrics-server, inside the server, serves
// metrics.k8s.io from the kubelet: `kubectl top nodes` and `kubectl top pods
// --containers` show the node and a busy container, and a
// HorizontalPodAutoscaler scales a Deployment up to its maximum under CPU
// load and back down to its minimum once the load stops.
func TestKubectlTopAndHPA(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	apply := func(manifest string) {
		t.Helper()
		if r := embedded(t).Run(t, the.kubeconfig, manifest, "apply", "-n", ns, "-f", "-"); r.Code != 0 {
			t.Fatalf("kubectl apply: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	}
	apply(fmt.Sprintf(burner, busyboxImage, "while :; do :; done"))

	eventually(t, 2*time.Minute, "kubectl top nodes to show the node", func() (bool, string) {
		r := kubectl(t, "top", "nodes")
		return r.Code == 0 && regexp.MustCompile(`(?m)^`+the.nodeName+`\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%`).MatchString(r.Stdout), r.Stdout + r.Stderr
	})
	// A busy container shows its CPU at about its limit (150m).
	eventually(t, 2*time.Minute, "kubectl top pods --containers to show the busy container", func() (bool, string) {
		r := kubectl(t, "top", "pods", "-n", ns, "--containers")
		m := regexp.MustCompile(`(?m)^burner-\S+\s+burn\s+(\d+)m\s+\d+Mi`).FindStringSubmatch(r.Stdout)
		if r.Code != 0 || m == nil {
			return false, r.Stdout + r.Stderr
		}
		var milli int
		fmt.Sscan(m[1], &milli)
		return milli >= 100, r.Stdout
	})

	apply(hpa)
	ctx := context.Background()
	replicas := func() (int32, string) {
		d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return -1, err.Error()
		}
		return *d.Spec.Replicas, kubectl(t, "get", "hpa", "-n", ns).Stdout
	}
	eventually(t, 3*time.Minute, "the HPA to scale burner up to 3", func() (bool, string) {
		n, hpa := replicas()
		return n == 3, hpa
	})
	// kubectl get hpa shows the utilization against the target.
	if out := mustKubectl(t, "get", "hpa", "-n", ns, "burner"); !regexp.MustCompile(`cpu: \d+%/50%\s+1\s+3\s+\d`).MatchString(out) {
		t.Errorf("kubectl get hpa:\n%s", out)
	}

	// The load stops: new pods sleep.
	apply(fmt.Sprintf(burner, busyboxImage, "exec sleep 3600"))
	eventually(t, 4*time.Minute, "the HPA to scale burner back down to 1", func() (bool, string) {
		n, hpa := replicas()
		return n == 1, hpa
	})
	if out := mustKubectl(t, "describe", "hpa", "-n", ns, "burner"); !strings.Contains(out, "SuccessfulRescale") {
		t.Errorf("kubectl describe hpa shows no rescale event:\n%s", out)
	}
}
