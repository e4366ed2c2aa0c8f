package network

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// applyYAML runs kubectl apply on a manifest, as a user would.
func applyYAML(t *testing.T, ns, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, "kubectl", "--kubeconfig", kubeconfig, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
	}
}

// jsonpath reads one field with kubectl get -o jsonpath.
func jsonpath(t *testing.T, ns, object, path string) string {
	t.Helper()
	out, err := kubectl(t, "get", "-n", ns, object, "-o", "jsonpath="+path)
	if err != nil {
		return "error: " + out
	}
	return out
}

// TestGateway: a Gateway of class skiff with HTTP and HTTPS listeners and
// HTTPRoutes, applied with kubectl as the Gateway API documentation writes
// them, is served by every node's proxy on the Gateway's own address (of
// --gateway-address-pool): a 90/10 canary split, a header
// match, a redirect, a prefix rewrite, HTTPS by SNI with the listener's
// certificate; statuses say Programmed and Accepted, and BackendNotFound
// for a route naming a missing Service; and re-weighting the canary under
// load fails no request.
func TestGateway(t *testing.T) {
	ns := namespace(t)
	blue := spreadDeployment(t, ns, "blue", 1)
	green := spreadDeployment(t, ns, "green", 1)
	service(t, ns, "blue", corev1.ServiceTypeClusterIP)
	service(t, ns, "green", corev1.ServiceTypeClusterIP)
	certPEM := tlsSecret(t, ns, "secure-tls", "secure.example")
	routes := func(blueWeight, greenWeight int) string {
		return fmt.Sprintf(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: canary
spec:
  parentRefs:
  - name: web
  hostnames:
  - canary.example
  rules:
  - backendRefs:
    - name: blue
      port: 80
      weight: %d
    - name: green
      port: 80
      weight: %d
`, blueWeight, greenWeight)
	}
	applyYAML(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: web
spec:
  gatewayClassName: skiff
  listeners:
  - name: http
    protocol: HTTP
    port: 80
  - name: https
    protocol: HTTPS
    port: 443
    hostname: secure.example
    tls:
      mode: Terminate
      certificateRefs:
      - kind: Secret
        name: secure-tls
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api
spec:
  parentRefs:
  - name: web
    sectionName: http
  hostnames:
  - api.example
  rules:
  - matches:
    - headers:
      - name: X-Version
        value: v2
    backendRefs:
    - name: green
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /v1
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /
    backendRefs:
    - name: blue
      port: 80
  - backendRefs:
    - name: blue
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: moved
spec:
  parentRefs:
  - name: web
  hostnames:
  - old.example
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: new.example
        statusCode: 301
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: secure
spec:
  parentRefs:
  - name: web
    sectionName: https
  rules:
  - backendRefs:
    - name: green
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: broken
spec:
  parentRefs:
  - name: web
  hostnames:
  - broken.example
  rules:
  - backendRefs:
    - name: nosuch
      port: 80
`+"---"+routes(90, 10))

	var addr string
	eventually(t, time.Minute, "the Gateway Programmed with an address of the pool", func() bool {
		addr = jsonpath(t, ns, "gateway/web", `{.status.addresses[*].value}`)
		return jsonpath(t, ns, "gateway/web", `{.status.conditions[?(@.type=="Programmed")].status}`) == "True" &&
			strings.HasPrefix(addr, strings.TrimSuffix(gatewayPool, "0/24"))
	})
	out, err := kubectl(t, "get", "gateway", "-n", ns, "web")
	if err != nil || !strings.Contains(out, "skiff") || !strings.Contains(out, addr) || !strings.Contains(out, "True") {
		t.Errorf("kubectl get gateway: want CLASS skiff, an ADDRESS and PROGRAMMED True: %v\n%s", err, out)
	}
	if got := jsonpath(t, ns, "gateway/web", `{.status.listeners[*].attachedRoutes}`); got != "4 1" {
		t.Errorf("listeners' attachedRoutes = %q, want \"4 1\" (http: api, moved, broken, canary; https: secure)", got)
	}
	eventually(t, 30*time.Second, "route statuses", func() bool {
		return jsonpath(t, ns, "httproute/api", `{.status.parents[0].conditions[?(@.type=="Accepted")].status}`) == "True" &&
			jsonpath(t, ns, "httproute/broken", `{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].reason}`) == "BackendNotFound"
	})

	get := clientTo(addr, certPEM)
	eventually(t, time.Minute, "the canary route served", func() bool {
		code, _, _ := get("http://canary.example/hostname")
		return code == 200
	})
	split := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			code, body, _ := get("http://canary.example/hostname")
			if code != 200 {
				t.Fatalf("canary: %d %s", code, body)
			}
			seen[body]++
		}
		return seen
	}
	// Smooth weighted round robin: exactly 90 and 10 of 100 through one
	// node's proxy.
	if seen := split(100); seen[blue[0].Name] != 90 || seen[green[0].Name] != 10 {
		t.Errorf("a 90/10 split over 100 requests: %v, want %s 90 and %s 10", seen, blue[0].Name, green[0].Name)
	}

	// The Gateway is served on its own address, not on the nodes'.
	if code, _, _ := ingressClient(certPEM)("http://canary.example/hostname"); code != 404 {
		t.Errorf("the Gateway's route through a node address: %d, want 404", code)
	}
	if code, body, _ := get("http://api.example/hostname", "X-Version", "v2"); code != 200 || body != green[0].Name {
		t.Errorf("header match X-Version: v2: %d %q, want green's pod", code, body)
	}
	if code, body, _ := get("http://api.example/hostname"); code != 200 || body != blue[0].Name {
		t.Errorf("no header: %d %q, want blue's pod", code, body)
	}
	if code, body, _ := get("http://api.example/v1/hostname"); code != 200 || body != blue[0].Name {
		t.Errorf("/v1/hostname rewritten to /hostname: %d %q, want blue's pod name", code, body)
	}
	if code, _, h := get("http://old.example/page?x=1"); code != 301 || h.Get("Location") != "https://new.example/page?x=1" {
		t.Errorf("redirect: %d Location %q, want 301 https://new.example/page?x=1", code, h.Get("Location"))
	}
	if code, body, _ := get("http://broken.example/hostname"); code != 500 || !strings.Contains(body, "nosuch") {
		t.Errorf("a route to a missing Service: %d %q, want 500 naming it", code, body)
	}
	if code, body, _ := get("https://secure.example/hostname"); code != 200 || body != green[0].Name {
		t.Errorf("HTTPS on the listener's certificate: %d %q, want green's pod", code, body)
	}
	if code, _, _ := get("https://other.example/hostname"); code == 200 {
		t.Error("the HTTPS listener for secure.example served another host")
	}

	// Re-weight the canary under load: every request in flight or sent
	// meanwhile is answered, and the new split takes over.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		sent     int
	)
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, _ := get("http://canary.example/hostname")
				mu.Lock()
				sent++
				if code != 200 {
					failures = append(failures, fmt.Sprintf("%d %s", code, body))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	applyYAML(t, ns, routes(0, 1))
	eventually(t, 30*time.Second, "the canary moved to green", func() bool {
		code, body, _ := get("http://canary.example/hostname")
		return code == 200 && body == green[0].Name
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed while the route changed: %v", len(failures), sent, failures[:min(5, len(failures))])
	}
	if seen := split(10); seen[green[0].Name] != 10 {
		t.Errorf("after the change to 0/1: %v, want all on green", seen)
	}
}

// TestGatewaySessionPersistence: on the experimental channel (the suite's
// cluster runs it) an HTTPRoute applied with kubectl keeps its
// sessionPersistence and retry fields; the cookie it names pins a client to
// one pod while the Deployment grows, and a client without it is balanced.
// An XBackendTrafficPolicy on a Service asks the same for routes to it, and
// is Accepted with the Gateway as its ancestor.
func TestGatewaySessionPersistence(t *testing.T) {
	ns := namespace(t)
	spreadDeployment(t, ns, "sticky", 2)
	service(t, ns, "sticky", corev1.ServiceTypeClusterIP)
	applyYAML(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: sticky
spec:
  gatewayClassName: skiff
  listeners:
  - name: http
    protocol: HTTP
    port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: sticky
spec:
  parentRefs:
  - name: sticky
  hostnames:
  - sticky.example
  rules:
  - backendRefs:
    - name: sticky
      port: 80
    sessionPersistence:
      sessionName: my-session
      type: Cookie
    retry:
      codes: [503]
      attempts: 2
      backoff: 10ms
---
apiVersion: v1
kind: Service
metadata:
  name: pinned
spec:
  selector:
    app: sticky
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: pinned
spec:
  parentRefs:
  - name: sticky
  hostnames:
  - pinned.example
  rules:
  - backendRefs:
    - name: pinned
      port: 80
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XBackendTrafficPolicy
metadata:
  name: pinned
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: pinned
  sessionPersistence:
    sessionName: policy-session
`)
	if got := jsonpath(t, ns, "httproute/sticky", `{.spec.rules[0].sessionPersistence.sessionName} {.spec.rules[0].retry.attempts}`); got != "my-session 2" {
		t.Fatalf("the HTTPRoute as stored: sessionName and retry.attempts %q, want \"my-session 2\" (experimental CRDs)", got)
	}
	var addr string
	eventually(t, time.Minute, "the Gateway Programmed with an address", func() bool {
		addr = jsonpath(t, ns, "gateway/sticky", `{.status.addresses[*].value}`)
		return addr != "" && jsonpath(t, ns, "gateway/sticky", `{.status.conditions[?(@.type=="Programmed")].status}`) == "True"
	})
	get := clientTo(addr, nil)
	cookie, pinned := affinityCookie(t, get, "http://sticky.example/hostname", "my-session")
	answers := func(header ...string) map[string]int {
		return countAnswers(t, get, 12, "http://sticky.example/hostname", header...)
	}
	if seen := answers("Cookie", cookie); len(seen) != 1 || seen[pinned] != 12 {
		t.Errorf("with the cookie of %s: answers %v, want all from it", pinned, seen)
	}
	if seen := answers(); len(seen) != 2 {
		t.Errorf("without a cookie: answers %v, want both pods", seen)
	}
	// The same persistence asked by an XBackendTrafficPolicy on the
	// Service instead of the route.
	affinityCookie(t, get, "http://pinned.example/hostname", "policy-session")
	eventually(t, 30*time.Second, "the policy Accepted for Gateway sticky", func() bool {
		return jsonpath(t, ns, "xbackendtrafficpolicy/pinned", `{.status.ancestors[0].ancestorRef.name} {.status.ancestors[0].conditions[?(@.type=="Accepted")].status}`) == "sticky True"
	})
	scaleDeployment(t, ns, "sticky", 3)
	eventually(t, 2*time.Minute, "the third pod in rotation", func() bool { return len(answers()) == 3 })
	if seen := answers("Cookie", cookie); len(seen) != 1 || seen[pinned] != 12 {
		t.Errorf("after scaling to three, with the cookie of %s: answers %v, want all from it", pinned, seen)
	}
}
