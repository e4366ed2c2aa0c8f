package network

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIngressBalancing: the balancing annotations of an Ingress, each
// measured through one node's proxy over three pods and compared with its
// definition. random spreads evenly; least-connections sends every new
// request to the one pod without a request in flight while the other two
// each hold a slow one; least-request (power of two choices) sends most of
// them there, but not all (a draw of the two busy pods picks one of them).
func TestIngressBalancing(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "lb", 3)
	service(t, ns, "lb", corev1.ServiceTypeClusterIP)
	for _, alg := range []string{"random", "least-connections", "least-request"} {
		hostIngress(t, ns, alg, alg+".example", "lb", map[string]string{"skiff.dev/load-balance": alg})
	}
	get := ingressClient(nil)
	eventually(t, time.Minute, "the three Ingresses served", func() bool {
		for _, alg := range []string{"random", "least-connections", "least-request"} {
			if code, _, _ := get("http://" + alg + ".example/hostname"); code != 200 {
				return false
			}
		}
		return true
	})

	// random: 150 requests, 50 expected per pod (σ ≈ 5.8); 25–75 is more
	// than four σ either way.
	seen := countAnswers(t, get, 150, "http://random.example/hostname")
	t.Logf("random: %v", seen)
	for _, p := range pods {
		if n := seen[p.Name]; n < 25 || n > 75 {
			t.Errorf("random: %s answered %d of 150 (all: %v), want 25–75", p.Name, n, seen)
		}
	}

	// least-connections: two requests that take 4 s go to two different
	// pods; while they run, every quick request goes to the third.
	busy, quick := underSlowRequests(t, "least-connections.example", 10)
	if len(busy) != 2 || busy[0] == busy[1] {
		t.Fatalf("least-connections: the two slow requests ran on %v, want two different pods", busy)
	}
	idle := otherPod(pods, busy)
	t.Logf("least-connections: slow requests on %v, quick ones %v", busy, quick)
	if quick[idle] != 10 {
		t.Errorf("least-connections: with %v busy, the quick requests went to %v, want all 10 to %s", busy, quick, idle)
	}

	// least-request: a quick request draws two of the three pods; the idle
	// one wins whenever it is drawn (2 draws in 3), and a draw of the two
	// busy pods goes to one of them. Of 30: 20 expected on the idle pod
	// (σ ≈ 2.6), at least 12 and at most 29 asked.
	busy, quick = underSlowRequests(t, "least-request.example", 30)
	if len(busy) != 2 || busy[0] == busy[1] {
		t.Fatalf("least-request: the two slow requests ran on %v, want two different pods", busy)
	}
	idle = otherPod(pods, busy)
	t.Logf("least-request: slow requests on %v, quick ones %v", busy, quick)
	if n := quick[idle]; n < 12 || n == 30 {
		t.Errorf("least-request: with %v busy, the quick requests went to %v, want 12–29 of 30 to %s", busy, quick, idle)
	}
}

// TestIngressPassiveEjection: a pod whose answers fail (500) is ejected
// from the proxy's balancing after five failures in a row, with no health
// check configured, and comes back once it answers again after its 30 s
// ejection.
func TestIngressPassiveEjection(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "ej", 3)
	service(t, ns, "ej", corev1.ServiceTypeClusterIP)
	hostIngress(t, ns, "ej", "ej.example", "ej", nil)
	get := ingressClient(nil)
	eventually(t, time.Minute, "the three pods serve through the Ingress", func() bool {
		return len(servedBy(get, 9, "http://ej.example/hostname")) == 3
	})

	sick := pods[0].Name
	if out, err := inPod(t, ns, sick, "timeout 3 wget -qO- http://127.0.0.1:8080/healthz/fail"); err != nil {
		t.Fatalf("fail %s's /healthz: %v %s", sick, err, out)
	}
	// Round robin: 15 requests give the sick pod its five failures in a
	// row (its readiness, /readyz, stays good: only the proxy sees it).
	failed := 0
	for range 15 {
		if code, _, _ := get("http://ej.example/healthz"); code == 500 {
			failed++
		}
	}
	if failed == 0 || failed > 5 {
		t.Errorf("/healthz through the proxy failed %d times of 15, want 1–5 (the sick pod's share until it is ejected)", failed)
	}
	if seen := countAnswers(t, get, 12, "http://ej.example/hostname"); seen[sick] != 0 {
		t.Errorf("after five failures in a row, %s still answered: %v", sick, seen)
	}
	for range 10 {
		if code, body, _ := get("http://ej.example/healthz"); code != 200 {
			t.Fatalf("/healthz with %s ejected: %d %s", sick, code, body)
		}
	}

	if out, err := inPod(t, ns, sick, "timeout 3 wget -qO- http://127.0.0.1:8080/healthz/ok"); err != nil {
		t.Fatalf("heal %s's /healthz: %v %s", sick, err, out)
	}
	start := time.Now()
	eventually(t, time.Minute, sick+" back in balancing after its ejection", func() bool {
		return servedBy(get, 6, "http://ej.example/hostname")[sick] > 0
	})
	if back := time.Since(start); back < 20*time.Second {
		t.Errorf("%s was back after %s, before its 30 s ejection ended", sick, back.Round(time.Second))
	}
}

// hostIngress creates the Ingress name serving host with the Service
// svc's port "http" on path prefix /, with annotations ann.
func hostIngress(t *testing.T, ns, name, host, svc string, ann map[string]string) {
	t.Helper()
	prefix := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}},
		}}}}},
	}
	if _, err := client.NetworkingV1().Ingresses(ns).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// underSlowRequests sends two requests that take 4 s to host through node
// 1's proxy, 300 ms apart, then n quick ones while they run. It returns the pods that
// ran the slow ones and the quick answers by pod.
func underSlowRequests(t *testing.T, host string, n int) (busy []string, quick map[string]int) {
	t.Helper()
	get, slowGet := ingressClient(nil), clientTimeout(nodeSubnet+".11", nil, 10*time.Second)
	slow := "http://" + host + "/shell?cmd=" + url.QueryEscape("sleep 4; hostname")
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards busy
	)
	for range 2 {
		wg.Go(func() {
			code, body, _ := slowGet(slow)
			var res struct {
				Output string `json:"output"`
			}
			if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
				t.Errorf("slow request to %s: %d %s", host, code, body)
				return
			}
			mu.Lock()
			busy = append(busy, strings.TrimSpace(res.Output))
			mu.Unlock()
		})
		time.Sleep(300 * time.Millisecond)
	}
	start := time.Now()
	quick = countAnswers(t, get, n, "http://"+host+"/hostname")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("%d quick requests to %s took %s: the slow ones may have ended before them", n, host, took)
	}
	wg.Wait()
	return busy, quick
}

// otherPod is the one of pods not named in busy.
func otherPod(pods []corev1.Pod, busy []string) string {
	for _, p := range pods {
		if p.Name != busy[0] && p.Name != busy[1] {
			return p.Name
		}
	}
	return ""
}
