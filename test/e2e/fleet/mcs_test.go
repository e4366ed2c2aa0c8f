package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// cart is the application each member runs and exports, as the MCS API's
// documentation writes it (v1alpha1, the version most manifests use).
const cart = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart-%[1]s
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: cart}
  template:
    metadata:
      labels: {app: cart}
    spec:
      containers:
      - name: cart
        image: localhost/skiff/testhost:latest
        args: ["netexec", "--http-port", "8080"]
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: cart
  namespace: shop
spec:
  selector: {app: cart}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: cart
  namespace: shop
`

// TestMultiClusterService: two downstream clusters that run real pods,
// each a skiff server with its node agent in a network namespace of its
// own (a host on a private LAN), join an upstream. A Service exported in
// one is imported into the other, whose pods reach it by its clusterset
// name; exported in both, the name reaches pods in both clusters. An
// export of a missing Service says so; an export withdrawn takes the
// import away.
func TestMultiClusterService(t *testing.T) {
	lan := e2eutil.NewLAN(t, "skfl", "172.31.251")
	up := e2eutil.StartServer(t, e2eutil.ServerOptions{Host: lan.Gateway(),
		Args: append([]string{"--fleet-upstream", "--tls-san", lan.Gateway(), "--advertise-address", lan.Gateway()}, lean...)})
	members := map[string]*e2eutil.Server{}
	for _, name := range []string{"east", "west"} {
		netns, addr := lan.AddHost()
		srv := e2eutil.StartServer(t, e2eutil.ServerOptions{Agent: true, Netns: netns, Host: addr, Args: []string{
			"--node-name", name, "--node-ip", addr, "--advertise-address", addr, "--tls-san", addr,
			"--disable-metrics-server", "--disable-dashboard", "--disable-gateway-api", "--disable-ingress",
		}})
		members[name] = srv
		token := skiff(t, "fleet", "token", "create", name, "--kubeconfig", up.Kubeconfig)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(strings.Fields(token)[0]), 0o600); err != nil {
			t.Fatal(err)
		}
		skiff(t, "fleet", "join", "--upstream", up.URL, "--token-file", tokenFile, "--name", name, "--kubeconfig", srv.Kubeconfig)
	}
	east, west := members["east"], members["west"]
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	step("members Ready, serving the MCS API", func(t *testing.T) {
		waitFor(t, 2*time.Minute, "two Ready clusters", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "clusters", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
			return r.Stdout == "east=True west=True ", r.Stdout + r.Stderr
		})
		for name, m := range members {
			waitFor(t, time.Minute, name+" serves serviceexports", func() (bool, string) {
				r := kubectl(t, m.Kubeconfig, "", "api-resources", "--api-group", "multicluster.x-k8s.io", "-o", "name")
				return strings.Contains(r.Stdout, "serviceexports.multicluster.x-k8s.io") && strings.Contains(r.Stdout, "serviceimports.multicluster.x-k8s.io"), r.Stdout + r.Stderr
			})
		}
	})

	step("an export of a missing Service is not valid", func(t *testing.T) {
		must(t, east.Kubeconfig, "", "create", "namespace", "lost")
		must(t, east.Kubeconfig, "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: nothing, namespace: lost}\n", "apply", "-f", "-")
		waitFor(t, 30*time.Second, "Valid=False NoService", func() (bool, string) {
			r := kubectl(t, east.Kubeconfig, "", "get", "serviceexport", "-n", "lost", "nothing", "-o",
				"jsonpath={.status.conditions[?(@.type=='Valid')].status}/{.status.conditions[?(@.type=='Valid')].reason}: {.status.conditions[?(@.type=='Valid')].message}")
			return r.Stdout == "False/NoService: Service lost/nothing does not exist", r.Stdout + r.Stderr
		})
	})

	must(t, east.Kubeconfig, fmt.Sprintf(cart, "east"), "apply", "-f", "-")
	// The client: a pod in the other cluster.
	must(t, west.Kubeconfig, "", "create", "namespace", "client")
	must(t, west.Kubeconfig, "", "run", "client", "-n", "client", "--image", "localhost/skiff/testhost:latest", "--restart", "Never", "--", "pause")

	step("exported in east, imported into west", func(t *testing.T) {
		waitFor(t, 90*time.Second, "east's export Ready", func() (bool, string) {
			r := kubectl(t, east.Kubeconfig, "", "get", "serviceexport", "-n", "shop", "cart", "-o",
				"jsonpath={.status.conditions[?(@.type=='Valid')].status} {.status.conditions[?(@.type=='Ready')].status}: {.status.conditions[?(@.type=='Ready')].message}")
			return strings.HasPrefix(r.Stdout, "True True: reachable from the clusterset at 172.31.251.11"), r.Stdout + r.Stderr
		})
		waitFor(t, 60*time.Second, "west's ServiceImport with its IP", func() (bool, string) {
			imp := kubectl(t, west.Kubeconfig, "", "get", "serviceimport", "-n", "shop", "cart", "-o", "jsonpath={.spec.type} {.spec.ports[0].port} {.spec.ips[0]}")
			svc, err := west.Client().CoreV1().Services("shop").Get(context.Background(), "derived-cart", metav1.GetOptions{})
			if err != nil {
				return false, imp.Stdout + imp.Stderr + err.Error()
			}
			return imp.Stdout == "ClusterSetIP 80 "+svc.Spec.ClusterIP, imp.Stdout + imp.Stderr
		})
		waitPodRunning(t, west, "client", "client")
		got := curlHostnames(t, west, "cart.shop.svc.clusterset.local", 1, 30)
		for h := range got {
			if !strings.HasPrefix(h, "cart-east-") {
				t.Errorf("answered by %q, want a pod of east", h)
			}
		}
		r := must(t, west.Kubeconfig, "", "exec", "-n", "client", "client", "--", "nslookup", "cart.shop.svc.clusterset.local")
		svc, _ := west.Client().CoreV1().Services("shop").Get(context.Background(), "derived-cart", metav1.GetOptions{})
		if !strings.Contains(r.Stdout, svc.Spec.ClusterIP) {
			t.Errorf("nslookup does not answer the import's IP %s:\n%s", svc.Spec.ClusterIP, r.Stdout)
		}
	})

	step("exported in both, reached in both", func(t *testing.T) {
		must(t, west.Kubeconfig, fmt.Sprintf(cart, "west"), "apply", "-f", "-")
		got := curlHostnames(t, west, "cart.shop.svc.clusterset.local", 2, 60)
		seen := map[string]bool{}
		for h := range got {
			seen[strings.SplitN(h, "-", 3)[1]] = true
		}
		if !seen["east"] || !seen["west"] {
			t.Errorf("answered by %v, want pods of east and west", got)
		}
		// The exporting cluster imports it too.
		r := must(t, east.Kubeconfig, "", "get", "serviceimports", "-n", "shop")
		if !strings.Contains(r.Stdout, "cart") || !strings.Contains(r.Stdout, "ClusterSetIP") {
			t.Errorf("kubectl get serviceimports in east:\n%s", r.Stdout)
		}
	})

	step("exec and port-forward through the upstream's proxy path", func(t *testing.T) {
		via := func(stdin string, args ...string) (string, error) {
			cmd := exec.Command(e2eutil.Binary(t), append([]string{"kubectl", "--kubeconfig", up.Kubeconfig, "--cluster", "west"}, args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := via("", "exec", "-n", "client", "client", "--", "sh", "-c", "echo answer-$((6*7)); exit 3")
		if !strings.Contains(out, "answer-42") {
			t.Errorf("exec through the proxy: %v\n%s", err, out)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exec through the proxy: exit %v, want the command's 3", err)
		}
		if out, err := via("from stdin\n", "exec", "-i", "-n", "client", "client", "--", "cat"); err != nil || out != "from stdin\n" {
			t.Errorf("exec -i through the proxy: %v %q", err, out)
		}
		// Port-forward to west's cart pod, then ask it through the local port.
		pods, err := west.Client().CoreV1().Pods("shop").List(context.Background(), metav1.ListOptions{LabelSelector: "app=cart"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("west's cart pods: %v", err)
		}
		port := e2eutil.FreePort(t)
		pf := exec.Command(e2eutil.Binary(t), "kubectl", "--kubeconfig", up.Kubeconfig, "--cluster", "west", "port-forward", "-n", "shop",
			"pod/"+pods.Items[0].Name, fmt.Sprintf("%d:8080", port))
		var pfOut strings.Builder
		pf.Stdout, pf.Stderr = &pfOut, &pfOut
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		waitFor(t, 30*time.Second, "the pod's hostname through port-forward", func() (bool, string) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", port))
			if err != nil {
				return false, err.Error() + "; " + pfOut.String()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b) == pods.Items[0].Name, string(b)
		})
	})

	step("exports withdrawn, the import goes", func(t *testing.T) {
		for _, m := range []*e2eutil.Server{east, west} {
			must(t, m.Kubeconfig, "", "delete", "serviceexport", "-n", "shop", "cart")
		}
		waitFor(t, 60*time.Second, "west's ServiceImport gone", func() (bool, string) {
			r := kubectl(t, west.Kubeconfig, "", "get", "serviceimports", "-n", "shop", "-o", "name")
			_, err := west.Client().CoreV1().Services("shop").Get(context.Background(), "derived-cart", metav1.GetOptions{})
			return r.Code == 0 && strings.TrimSpace(r.Stdout) == "" && err != nil, r.Stdout + r.Stderr
		})
		r := kubectl(t, west.Kubeconfig, "", "exec", "-n", "client", "client", "--", "nslookup", "cart.shop.svc.clusterset.local")
		if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "NXDOMAIN") {
			t.Errorf("the name still resolves once withdrawn (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		// The NodePort twin of the exported ClusterIP Service went with the export.
		waitFor(t, 30*time.Second, "east's export-cart Service gone", func() (bool, string) {
			_, err := east.Client().CoreV1().Services("shop").Get(context.Background(), "export-cart", metav1.GetOptions{})
			return err != nil, fmt.Sprint(err)
		})
	})
}

func waitPodRunning(t *testing.T, s *e2eutil.Server, ns, name string) {
	t.Helper()
	waitFor(t, 90*time.Second, "pod "+ns+"/"+name+" running", func() (bool, string) {
		p, err := s.Client().CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
}

// curlHostnames asks host's /hostname from the client pod until want
// different pods answered (at most tries times) and counts the answers.
func curlHostnames(t *testing.T, s *e2eutil.Server, host string, want, tries int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var last string
	for i := 0; i < tries && len(got) < want; i++ {
		r := kubectl(t, s.Kubeconfig, "", "exec", "-n", "client", "client", "--", "timeout", "3", "wget", "-qO-", "http://"+host+"/hostname")
		if r.Code == 0 && strings.TrimSpace(r.Stdout) != "" {
			got[strings.TrimSpace(r.Stdout)]++
		} else {
			last = r.Stdout + r.Stderr
			time.Sleep(500 * time.Millisecond)
		}
	}
	t.Logf("http://%s/hostname answered by %v", host, got)
	if len(got) < want {
		t.Fatalf("%d of %d pods answered http://%s/hostname in %d tries: %v; last failure: %s", len(got), want, host, tries, got, last)
	}
	return got
}
