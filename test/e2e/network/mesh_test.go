package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The mesh's ports and label (internal/mesh), as a user reads them in the
// docs.
const (
	meshLabel       = "mesh.skiff.dev/enabled"
	meshMetricsPort = 15020
)

// nodeIP is the address of node skiff-nI (netns-cluster.sh).
func nodeIP(i int) string { return fmt.Sprintf("%s.1%d", nodeSubnet, i) }

// meshMetric sums the samples of metric on node i's mesh proxy whose labels
// include every one of want.
func meshMetric(t *testing.T, i int, metric string, want ...string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/metrics", nodeIP(i), meshMetricsPort))
	if err != nil {
		t.Fatalf("mesh metrics of node %d: %v", i, err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		match := true
		for _, w := range want {
			if !strings.Contains(line, w) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// labelNamespace sets (or with value "", removes) the mesh label.
func labelNamespace(t *testing.T, ns, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = strconv.Quote(value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, meshLabel, v)
	if _, err := client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// fetch asks url from inside pod n times and returns the answers that
// came back.
func fetch(t *testing.T, ns, pod, url string, n int) []string {
	t.Helper()
	out, _ := inPod(t, ns, pod, fmt.Sprintf(`for i in $(seq %d); do timeout 5 wget -qO- '%s' 2>/dev/null && echo; done; true`, n, url))
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, l)
		}
	}
	return got
}

// TestMesh enrols a namespace and checks what its workloads get with no
// change to their manifests: their traffic across nodes is mutual TLS (a
// tap on the link sees TLS records, not the payload), the destination
// proxy knows the client's SPIFFE identity and counts each connection,
// sources outside the mesh still reach it (permissive), and un-enrolling
// restores direct traffic.
func TestMesh(t *testing.T) {
	ns := namespace(t)
	labelNamespace(t, ns, "true")
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "client"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	netexecPod(t, ns, "web", "web", func(s *corev1.PodSpec) {
		s.NodeName = "skiff-n2"
		s.Containers[0].Args = []string{"netexec", "--grpc-port", "8082"}
	})
	waitRunning(t, ns, "web")
	svc := service(t, ns, "web", corev1.ServiceTypeClusterIP)
	createPod(t, ns, "client", nil, func(s *corev1.PodSpec) {
		s.NodeName = "skiff-n1"
		s.ServiceAccountName = "client"
	})
	waitRunning(t, ns, "client")
	other := namespace(t) // not enrolled
	createPod(t, other, "outsider", nil, func(s *corev1.PodSpec) { s.NodeName = "skiff-n3" })
	waitRunning(t, other, "outsider")

	url := fmt.Sprintf("http://%s/echo?msg=", svc.Spec.ClusterIP)
	principal := fmt.Sprintf(`source_principal="spiffe://cluster.local/ns/%s/sa/client"`, ns)
	// The destination proxy sees HTTP requests (request metrics); the
	// source counts connections.
	destination := []string{`reporter="destination"`, principal, `connection_security_policy="mutual_tls"`, fmt.Sprintf(`destination_workload_namespace=%q`, ns), `destination_workload="web"`, `destination_service_name="web"`, `request_protocol="http"`, `response_code="200"`}
	// The first connections wait for the workloads' certificates.
	eventually(t, time.Minute, "the client reaching web through the mesh", func() bool {
		return len(fetch(t, ns, "client", url+"hello", 1)) == 1 && meshMetric(t, 2, "istio_requests_total", destination...) > 0
	})

	t.Run("encrypted and counted", func(t *testing.T) {
		before := meshMetric(t, 2, "istio_requests_total", destination...)
		sourceBefore := meshMetric(t, 1, "istio_tcp_connections_opened_total", `reporter="source"`, principal, `destination_service_name="web"`)
		secret := "meshpayload" + strconv.FormatInt(time.Now().UnixNano(), 36)
		capture := startCapture(t)
		const n = 5
		got := fetch(t, ns, "client", url+secret, n)
		seen := capture.stop()
		if len(got) != n || got[0] != secret {
			t.Fatalf("answers %q, want %d × %q", got, n, secret)
		}
		if bytes.Contains(seen, []byte(secret)) {
			t.Errorf("the payload crossed the node link in plaintext")
		}
		if !bytes.Contains(seen, []byte{0x17, 0x03, 0x03}) {
			t.Errorf("no TLS application data records on the node link (%d bytes captured)", len(seen))
		}
		eventually(t, 10*time.Second, "metrics counting the connections", func() bool {
			return meshMetric(t, 2, "istio_requests_total", destination...)-before == n &&
				meshMetric(t, 1, "istio_tcp_connections_opened_total", `reporter="source"`, principal, `destination_service_name="web"`)-sourceBefore == n
		})
		if b := meshMetric(t, 1, "istio_tcp_received_bytes_total", `reporter="source"`, principal); b <= 0 {
			t.Errorf("istio_tcp_received_bytes_total = %v", b)
		}
		if c := meshMetric(t, 2, "istio_request_duration_milliseconds_count", destination...); c < n {
			t.Errorf("istio_request_duration_milliseconds_count = %v, want at least %d", c, n)
		}
	})

	t.Run("gRPC detected and counted", func(t *testing.T) {
		webIP := waitRunning(t, ns, "web").Status.PodIP
		grpc := []string{`reporter="destination"`, principal, `request_protocol="grpc"`, `grpc_response_status="0"`, `destination_workload="web"`}
		before := meshMetric(t, 2, "istio_requests_total", grpc...)
		out, err := inPod(t, ns, "client", fmt.Sprintf("/testhost http-load --grpc-health %s:8082 --requests 5", webIP))
		if err != nil {
			t.Fatalf("gRPC health checks through the mesh: %v\n%s", err, out)
		}
		eventually(t, 10*time.Second, "5 gRPC calls counted by the destination", func() bool {
			return meshMetric(t, 2, "istio_requests_total", grpc...)-before == 5
		})
	})

	t.Run("permissive accepts plaintext from outside the mesh", func(t *testing.T) {
		before := meshMetric(t, 2, "istio_requests_total", `reporter="destination"`, `connection_security_policy="none"`, fmt.Sprintf(`destination_workload_namespace=%q`, ns))
		if got := fetch(t, other, "outsider", url+"plain", 1); len(got) != 1 {
			t.Fatalf("outsider got %q", got)
		}
		eventually(t, 10*time.Second, "the plaintext connection counted", func() bool {
			return meshMetric(t, 2, "istio_requests_total", `reporter="destination"`, `connection_security_policy="none"`, fmt.Sprintf(`destination_workload_namespace=%q`, ns)) > before
		})
	})

	t.Run("strict refuses plaintext", func(t *testing.T) {
		applyYAML(t, ns, `
apiVersion: mesh.skiff.dev/v1alpha1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
`)
		eventually(t, 30*time.Second, "the outsider refused", func() bool {
			return len(fetch(t, other, "outsider", url+"plain", 1)) == 0
		})
		if got := fetch(t, ns, "client", url+"mtls", 1); len(got) != 1 {
			t.Fatalf("the enrolled client got %q under STRICT", got)
		}
		if n := meshMetric(t, 2, "skiff_mesh_denied_total", `reason="plaintext_refused"`, fmt.Sprintf(`destination_workload_namespace=%q`, ns)); n == 0 {
			t.Errorf("no plaintext_refused denial counted")
		}
		eventually(t, 10*time.Second, "a MeshConnectionDenied event on web", func() bool {
			out, _ := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=web,reason=MeshConnectionDenied", "-o", "name")
			return strings.TrimSpace(out) != ""
		})
	})

	t.Run("authorization by identity", func(t *testing.T) {
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createPod(t, ns, "intruder", nil, func(s *corev1.PodSpec) {
			s.NodeName = "skiff-n3"
			s.ServiceAccountName = "other"
		})
		waitRunning(t, ns, "intruder")
		policy := func(principals ...string) string {
			return fmt.Sprintf(`
apiVersion: mesh.skiff.dev/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: web-clients
spec:
  selector:
    matchLabels:
      app: web
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [%s]
    to:
    - operation:
        ports: ["8080"]
`, strings.Join(principals, ", "))
		}
		clientP, otherP := fmt.Sprintf("cluster.local/ns/%s/sa/client", ns), fmt.Sprintf("cluster.local/ns/%s/sa/other", ns)
		applyYAML(t, ns, policy(clientP))
		eventually(t, 30*time.Second, "the other identity refused", func() bool {
			return len(fetch(t, ns, "intruder", url+"x", 1)) == 0
		})
		if got := fetch(t, ns, "client", url+"allowed", 1); len(got) != 1 {
			t.Fatalf("the allowed client got %q", got)
		}
		if n := meshMetric(t, 2, "skiff_mesh_denied_total", `reason="denied_by_policy"`); n == 0 {
			t.Errorf("no denied_by_policy denial counted")
		}
		applyYAML(t, ns, policy(clientP, otherP))
		eventually(t, 30*time.Second, "the other identity allowed once the policy names it", func() bool {
			return len(fetch(t, ns, "intruder", url+"x", 1)) == 1
		})
		// A rule on paths decides each request: 403 for the others.
		applyYAML(t, ns, strings.Replace(policy(clientP, otherP), `ports: ["8080"]`, `paths: ["/echo*"]`, 1))
		status := func(path string) string {
			out, _ := inPod(t, ns, "client", fmt.Sprintf(`timeout 5 wget -S -O /dev/null 'http://%s%s' 2>&1 | grep 'HTTP/' | head -1`, svc.Spec.ClusterIP, path))
			return strings.TrimSpace(out)
		}
		eventually(t, 30*time.Second, "GET /hostname forbidden by a rule on paths", func() bool {
			return strings.Contains(status("/hostname"), "403")
		})
		if got := status("/echo?msg=x"); !strings.Contains(got, "200") {
			t.Errorf("GET /echo under a rule allowing /echo*: %q", got)
		}
		if n := meshMetric(t, 2, "istio_requests_total", `response_code="403"`, principal); n == 0 {
			t.Errorf("no 403 counted in istio_requests_total")
		}
		// skiff mesh status lists the workloads with their identities,
		// mode and policies.
		eventually(t, 30*time.Second, "skiff mesh status listing web and client", func() bool {
			out, err := exec.Command(skiffBin, "mesh", "status", "--kubeconfig", kubeconfig, "-n", ns).CombinedOutput()
			text := string(out)
			web := regexp.MustCompile(`(?m)^` + ns + `\s+web\s+1/1\s+spiffe://cluster.local/ns/` + ns + `/sa/default\s+\S+\s+STRICT\s+1$`)
			return err == nil && web.MatchString(text) && strings.Contains(text, "spiffe://cluster.local/ns/"+ns+"/sa/client")
		})
		// A policy skiff cannot enforce is refused at admission, the
		// field named.
		cmd := exec.Command(skiffBin, "kubectl", "--kubeconfig", kubeconfig, "apply", "-n", ns, "-f", "-")
		cmd.Stdin = strings.NewReader(strings.Replace(policy(clientP), "action: ALLOW", "action: AUDIT", 1))
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "spec.action") {
			t.Errorf("an AUDIT policy: %v\n%s\nwant a refusal naming spec.action", err, out)
		}
	})

	t.Run("destination agent killed with -9", func(t *testing.T) {
		stopAgent(t, 2, syscall.SIGKILL)
		// Its capture rules stay: the pod is unreachable, in plaintext
		// least of all, until the proxy is back.
		if got := fetch(t, other, "outsider", url+"down", 1); len(got) != 0 {
			t.Errorf("the outsider reached web in plaintext while its node's proxy was down: %q", got)
		}
		startAgent(t, 2)
		start := time.Now()
		eventually(t, 90*time.Second, "the client reaching web again through the mesh", func() bool {
			return len(fetch(t, ns, "client", url+"back", 1)) == 1
		})
		t.Logf("traffic resumed %s after the agent was started again", time.Since(start).Round(time.Second))
		eventually(t, 90*time.Second, "skiff-n2 Ready", func() bool { return nodeReady("skiff-n2") == corev1.ConditionTrue })
	})

	t.Run("HTTPRoute on a Service: weighted split and retries", func(t *testing.T) {
		// reviews selects both versions; reviews-v1 and -v2 one each.
		for i, v := range []string{"v1", "v2"} {
			createPod(t, ns, "reviews-"+v, map[string]string{"app": "reviews", "version": v}, func(s *corev1.PodSpec) {
				s.NodeName = fmt.Sprintf("skiff-n%d", 2+i)
				s.Containers[0].Args = []string{"netexec", "--grpc-port", "8082"}
				s.Containers[0].ReadinessProbe = &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				}
			})
		}
		svcOf := func(name string, sel map[string]string) *corev1.Service {
			return createService(t, ns, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "grpc", Port: 8082, TargetPort: intstr.FromInt32(8082)},
				}},
			})
		}
		reviews := svcOf("reviews", map[string]string{"app": "reviews"})
		svcOf("reviews-v1", map[string]string{"app": "reviews", "version": "v1"})
		svcOf("reviews-v2", map[string]string{"app": "reviews", "version": "v2"})
		for _, v := range []string{"v1", "v2"} {
			eventually(t, 2*time.Minute, "reviews-"+v+" ready", func() bool { return podReady(t, ns, "reviews-"+v) })
		}
		// v1 answers /healthz with 500 from now on.
		if out, err := inPod(t, ns, "reviews-v1", "wget -qO- http://127.0.0.1:8080/healthz/fail"); err != nil {
			t.Fatalf("fail v1's /healthz: %v %s", err, out)
		}
		applyYAML(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 80
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /healthz
    retry:
      codes: [500]
      attempts: 2
    backendRefs:
    - name: reviews
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /healthz
      headers:
      - name: x-budget
        value: test
    retry:
      codes: [500]
      attempts: 1
    backendRefs:
    - name: reviews-v1
      port: 80
  - backendRefs:
    - name: reviews-v1
      port: 80
      weight: 90
    - name: reviews-v2
      port: 80
      weight: 10
`)
		eventually(t, 30*time.Second, "the route Accepted on its Service", func() bool {
			return jsonpath(t, ns, "httproute/reviews", `{.status.parents[0].conditions[?(@.type=="Accepted")].status}`) == "True"
		})
		base := "http://" + reviews.Spec.ClusterIP
		eventually(t, 30*time.Second, "the split applied", func() bool {
			got := fetch(t, ns, "client", base+"/hostname", 10)
			return len(got) == 10 && slices.Contains(got, "reviews-v1")
		})
		const n = 100
		counts := map[string]int{}
		for _, h := range fetch(t, ns, "client", base+"/hostname", n) {
			counts[h]++
		}
		if counts["reviews-v1"]+counts["reviews-v2"] != n || counts["reviews-v2"] < 5 || counts["reviews-v2"] > 15 {
			t.Errorf("90/10 split over %d requests: %v", n, counts)
		}
		t.Logf("90/10 split over %d requests: %v", n, counts)
		// Half the endpoints of reviews answer /healthz with 500: the
		// rule's retries hide them, within the retry budget of reviews
		// (an XBackendTrafficPolicy's: up to half the requests may be
		// retries, or 20 a second).
		budget := func(svc string, percent, count int, interval string) {
			applyYAML(t, ns, fmt.Sprintf(`
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XBackendTrafficPolicy
metadata:
  name: %s-retries
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: %s
  retryConstraint:
    budget:
      percent: %d
    minRetryRate:
      count: %d
      interval: %s
`, svc, svc, percent, count, interval))
		}
		budget("reviews", 50, 20, "1s")
		if got := fetch(t, ns, "client", base+"/healthz", 20); len(got) != 20 {
			t.Errorf("%d of 20 requests to /healthz answered with retries on 500, want all: %q", len(got), got)
		}
		// The x-budget rule sends /healthz to v1 alone, retrying once on
		// 500, within a budget of one retry an hour: the first request's
		// retry is sent (and fails: 500), the next ones' are refused, and
		// they get 503, never v1's 500.
		budget("reviews-v1", 0, 1, "1h")
		healthz := func(n int) string {
			out, _ := inPod(t, ns, "client", fmt.Sprintf(`for i in $(seq %d); do timeout 5 wget -qO- --header 'x-budget: test' '%s/healthz' 2>&1; echo; done; true`, n, base))
			return out
		}
		eventually(t, 30*time.Second, "retries refused by the spent budget", func() bool {
			return strings.Contains(healthz(1), "503 Service Unavailable")
		})
		if out := healthz(10); strings.Count(out, "503 Service Unavailable") != 10 {
			t.Errorf("with the budget spent, want 10 answers 503:\n%s", out)
		}

		// gRPC: v1's health service reports NOT_SERVING now (it follows
		// /healthz), v2's SERVING. A GRPCRoute on the Service's gRPC
		// port sends the Health service's calls to v2 alone, over HTTP/2
		// through the mesh: every call succeeds, each counted by the
		// client's proxy and at v2.
		applyYAML(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: reviews-grpc
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 8082
  rules:
  - matches:
    - method:
        service: grpc.health.v1.Health
    backendRefs:
    - name: reviews-v2
      port: 8082
`)
		eventually(t, 30*time.Second, "the GRPCRoute Accepted on its Service", func() bool {
			return jsonpath(t, ns, "grpcroute/reviews-grpc", `{.status.parents[0].conditions[?(@.type=="Accepted")].status}`) == "True"
		})
		grpcOK := []string{`request_protocol="grpc"`, `grpc_response_status="0"`, principal}
		atSource := append([]string{`reporter="source"`, `destination_service_name="reviews"`}, grpcOK...)
		atV2 := append([]string{`reporter="destination"`, `destination_workload="reviews-v2"`}, grpcOK...)
		target := fmt.Sprintf("%s:8082", reviews.Spec.ClusterIP)
		eventually(t, 30*time.Second, "gRPC calls routed to v2", func() bool {
			_, err := inPod(t, ns, "client", "/testhost http-load --grpc-health "+target+" --requests 10")
			return err == nil
		})
		sourceBefore, v2Before := meshMetric(t, 1, "istio_requests_total", atSource...), meshMetric(t, 3, "istio_requests_total", atV2...)
		if out, err := inPod(t, ns, "client", "/testhost http-load --grpc-health "+target+" --requests 40"); err != nil {
			t.Errorf("40 gRPC health checks through the GRPCRoute: %v %s", err, out)
		}
		eventually(t, 10*time.Second, "40 more gRPC calls counted at the source and at v2", func() bool {
			return meshMetric(t, 1, "istio_requests_total", atSource...)-sourceBefore == 40 &&
				meshMetric(t, 3, "istio_requests_total", atV2...)-v2Before == 40
		})
	})

	t.Run("un-enrolment restores direct traffic", func(t *testing.T) {
		labelNamespace(t, ns, "")
		before := meshMetric(t, 2, "istio_requests_total", destination...)
		secret := "plainpayload" + strconv.FormatInt(time.Now().UnixNano(), 36)
		eventually(t, 30*time.Second, "the payload on the link in plaintext", func() bool {
			capture := startCapture(t)
			got := fetch(t, ns, "client", url+secret, 1)
			return len(got) == 1 && bytes.Contains(capture.stop(), []byte(secret))
		})
		if after := meshMetric(t, 2, "istio_requests_total", destination...); after != before {
			t.Errorf("the mesh still counted connections after un-enrolment: %v → %v", before, after)
		}
	})
}
