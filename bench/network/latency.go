package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// latency times sequential GETs from the node's own namespace to one
// testhost pod: at podIP:8080 and at clusterIP:80 (kube-proxy's DNAT),
// alternating so that both see the same machine load.
func latency(ctx context.Context, c *cluster, o options, report *benchkit.Report) error {
	const ns = "bench-latency"
	fmt.Println("\n## latency: ClusterIP against pod IP")
	if err := benchkit.CreateNamespace(ctx, c.client, ns); err != nil {
		return err
	}
	labels := map[string]string{"app": "web"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "web", Image: "localhost/skiff/testhost:latest", Args: []string{"netexec"},
				ImagePullPolicy: corev1.PullNever,
				Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	if _, err := c.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	svc, err := c.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	var podIP string
	deadline := time.Now().Add(3 * time.Minute)
	for podIP == "" {
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					podIP = p.Status.PodIP
				}
			}
		}
		if podIP == "" && (time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond)) {
			return fmt.Errorf("pod not ready within 3m (%v)", err)
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	targets := []struct{ name, url string }{
		{"pod IP", "http://" + podIP + ":8080/hostname"},
		{"ClusterIP", "http://" + svc.Spec.ClusterIP + ":80/hostname"},
	}
	get := func(url string) (time.Duration, error) {
		start := time.Now()
		resp, err := hc.Get(url)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "web" {
			return 0, fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
		}
		return took, nil
	}
	// Wait for the ClusterIP to answer (kube-proxy's sync), then warm up.
	deadline = time.Now().Add(time.Minute)
	for {
		if _, err := get(targets[1].url); err == nil {
			break
		} else if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("ClusterIP not answering within 1m: %v", err)
		}
	}
	for range 50 {
		for _, t := range targets {
			_, _ = get(t.url)
		}
	}
	lat := make([][]time.Duration, len(targets))
	failed := make([]int, len(targets))
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)
	started := time.Now()
	for i := 0; i < o.requests && time.Since(started) < 5*time.Minute && ctx.Err() == nil; i++ {
		for j, t := range targets {
			d, err := get(t.url)
			if err != nil {
				failed[j]++
				continue
			}
			lat[j] = append(lat[j], d)
		}
	}
	fmt.Printf("  %d requests per target in %s, load %s\n", o.requests, time.Since(started).Round(time.Millisecond), load.Stop())
	sums := make([]benchkit.Summary, len(targets))
	for j, t := range targets {
		sums[j] = benchkit.Summarize(lat[j])
		report.Add(fmt.Sprintf("GET %s (no keep-alive), %d sequential", t.name, o.requests),
			fmt.Sprintf("p50 %s, p90 %s, p99 %s, mean %s, %d failed", benchkit.Ms(sums[j].P50), benchkit.Ms(sums[j].P90), benchkit.Ms(sums[j].P99), benchkit.Ms(sums[j].Mean), failed[j]))
	}
	report.Add("ClusterIP minus pod IP",
		fmt.Sprintf("p50 %+.3f ms, p99 %+.3f ms, mean %+.3f ms", ms(sums[1].P50-sums[0].P50), ms(sums[1].P99-sums[0].P99), ms(sums[1].Mean-sums[0].Mean)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
