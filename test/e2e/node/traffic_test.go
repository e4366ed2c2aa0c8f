package node

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestDeploymentServesTraffic: a two-replica Deployment of testhost netexec
// (pulled with imagePullPolicy Always, so through the agent's loopback
// mirror) becomes Available; its pods carry the status fields a user reads;
// each answers on its pod IP from the host, and a ClusterIP Service spreads
// requests over both.
func TestDeploymentServesTraffic(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	tpl := pod("web", container(func(c *corev1.Container) {
		c.ImagePullPolicy = corev1.PullAlways
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: mustQuantity("10m")}
	}))
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: tpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec},
		},
	}
	if _, err := the.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: tpl.Labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	svc, err := the.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	eventually(t, podStart, "deployment web Available with 2 ready replicas", func() (bool, string) {
		d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == 2 && d.Status.AvailableReplicas == 2 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("ready %d available %d conditions %v", d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.Conditions)
	})

	list, err := the.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("want 2 pods, got %d", len(list.Items))
	}
	podNet := netip.MustParsePrefix("10.42.0.0/16")
	want := map[string]bool{}
	for _, p := range list.Items {
		st := p.Status
		if p.Spec.NodeName != the.nodeName {
			t.Errorf("pod %s: nodeName %q, want %q", p.Name, p.Spec.NodeName, the.nodeName)
		}
		if ip, err := netip.ParseAddr(st.PodIP); err != nil || !podNet.Contains(ip) {
			t.Errorf("pod %s: podIP %q not in %s", p.Name, st.PodIP, podNet)
		}
		if len(st.PodIPs) == 0 || st.PodIPs[0].IP != st.PodIP {
			t.Errorf("pod %s: podIPs %v do not start with podIP %s", p.Name, st.PodIPs, st.PodIP)
		}
		if st.HostIP == "" {
			t.Errorf("pod %s: no hostIP", p.Name)
		}
		if st.StartTime == nil || time.Since(st.StartTime.Time) > 5*time.Minute {
			t.Errorf("pod %s: startTime %v", p.Name, st.StartTime)
		}
		if st.QOSClass != corev1.PodQOSBurstable {
			t.Errorf("pod %s: qosClass %q, want Burstable (a CPU request, no limits)", p.Name, st.QOSClass)
		}
		for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			if got := podCondition(&p, c); got != corev1.ConditionTrue {
				t.Errorf("pod %s: condition %s=%q, want True", p.Name, c, got)
			}
		}
		cs := containerStatus(&p, "app")
		if cs == nil || !cs.Ready || cs.State.Running == nil || cs.RestartCount != 0 || !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.ImageID == "" {
			t.Errorf("pod %s: container status %+v, want running, ready, 0 restarts, a containerd:// ID and an imageID", p.Name, cs)
		}
		code, body, err := httpGet("http://" + st.PodIP + ":8080/hostname")
		if err != nil || code != 200 || body != p.Name {
			t.Errorf("GET http://%s:8080/hostname = %d %q (%v), want 200 %q", st.PodIP, code, body, err, p.Name)
		}
		want[p.Name] = true
	}

	// kube-proxy programs the Service shortly after its endpoints are ready.
	seen := map[string]int{}
	url := "http://" + svc.Spec.ClusterIP + ":80/hostname"
	eventually(t, 30*time.Second, "Service "+url+" reaching both pods", func() (bool, string) {
		for i := 0; i < 20; i++ {
			code, body, err := httpGet(url)
			if err != nil || code != 200 {
				return false, fmt.Sprintf("GET %s = %d %q (%v)", url, code, body, err)
			}
			if !want[body] {
				return false, fmt.Sprintf("GET %s answered %q, not one of the Deployment's pods", url, body)
			}
			seen[body]++
		}
		return len(seen) == 2, fmt.Sprintf("hostnames seen: %v", seen)
	})
	var counts []string
	for k, v := range seen {
		counts = append(counts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(counts)
	t.Logf("Service spread: %s", strings.Join(counts, " "))
}
