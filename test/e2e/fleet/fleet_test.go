// Package fleet tests the fleet end to end: one upstream skiff
// (--fleet-upstream) and three downstream skiff clusters on this machine,
// each with simulated nodes, joined with `skiff fleet join`, driven with
// real kubectl on the upstream.
package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

func TestMain(m *testing.M) { e2eutil.Main(m) }

// lean are the flags of every server here: four share this machine, and
// the parts they skip would contend for the same host ports.
var lean = []string{"--disable-dns", "--disable-metrics-server", "--disable-dashboard", "--disable-gateway-api"}

// cluster is one downstream.
type cluster struct {
	name string
	srv  *e2eutil.Server
}

func skiff(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(e2eutil.Binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, last)
}

// kubectl runs the newest standalone kubectl (or skiff kubectl).
func kubectl(t *testing.T, kubeconfig, stdin string, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.Kubectls(t)[0].Run(t, kubeconfig, stdin, args...)
}

// must runs kubectl and fails the test if it fails.
func must(t *testing.T, kubeconfig, stdin string, args ...string) e2eutil.Result {
	t.Helper()
	r := kubectl(t, kubeconfig, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

const app = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:v1
        resources:
          requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  greeting: hello
---
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata:
  name: web
  namespace: shop
spec:
  resourceSelectors:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
  - apiVersion: v1
    kind: ConfigMap
    name: web-config
  placement:
    clusterAffinity:
      clusterNames: [east, west, north]
    clusterTolerations:
    - key: cluster.fleet.skiff.dev/not-ready
      operator: Exists
      effect: NoExecute
      tolerationSeconds: 4
    - key: cluster.fleet.skiff.dev/unreachable
      operator: Exists
      effect: NoExecute
      tolerationSeconds: 4
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - targetCluster: {clusterNames: [east]}
          weight: 2
        - targetCluster: {clusterNames: [west]}
          weight: 1
        - targetCluster: {clusterNames: [north]}
          weight: 3
---
apiVersion: fleet.skiff.dev/v1alpha1
kind: OverridePolicy
metadata:
  name: web-west
  namespace: shop
spec:
  resourceSelectors:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
  overrideRules:
  - targetCluster:
      labelSelector:
        matchLabels: {env: staging}
    overriders:
      imageOverrider:
      - component: Registry
        operator: replace
        value: mirror.west.example.com
      - component: Tag
        operator: replace
        value: v2
      labelsOverrider:
      - operator: add
        value: {tier: canary}
`

// batch is divided by the clusters' free capacity (Karmada's dynamic weight).
const batch = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: batch
  namespace: shop
spec:
  replicas: 18
  selector:
    matchLabels: {app: batch}
  template:
    metadata:
      labels: {app: batch}
    spec:
      containers:
      - name: batch
        image: registry.example.com/shop/batch:v1
        resources:
          requests: {cpu: 10m, memory: 640Mi}
---
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata:
  name: batch
  namespace: shop
spec:
  resourceSelectors:
  - apiVersion: apps/v1
    kind: Deployment
    name: batch
  placement:
    clusterAffinity:
      clusterNames: [east, west, north]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        dynamicWeight: AvailableReplicas
`

// TestFleet: three downstreams join an upstream; a Deployment and a
// ConfigMap with a weighted policy and an override are placed, divided,
// overridden and aggregated; a drift is reverted; a downstream killed
// fails over and returns; a frozen one (a partition) converges with no
// duplicate; deleting on the upstream deletes everywhere; a revoked agent
// is refused.
func TestFleet(t *testing.T) {
	up := e2eutil.StartServer(t, e2eutil.ServerOptions{Args: append([]string{"--fleet-upstream", "--fleet-cluster-monitor-grace-period", "6s"}, lean...)})
	downs := []*cluster{{name: "east"}, {name: "west"}, {name: "north"}}
	labels := map[string]string{"east": "env=production", "west": "env=staging", "north": "env=production"}
	// Memory per node, so that the clusters' free capacity differs: 2, 4
	// and 6 GiB in all.
	memory := map[string]string{"east": "1Gi", "west": "2Gi", "north": "3Gi"}
	for _, c := range downs {
		c.srv = e2eutil.StartServer(t, e2eutil.ServerOptions{Args: lean})
		e2eutil.StartSim(t, c.srv.Kubeconfig, 2, "node-", "--memory", memory[c.name])
		token := skiff(t, "fleet", "token", "create", c.name, "--label", labels[c.name], "--kubeconfig", up.Kubeconfig)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(strings.Fields(token)[0]), 0o600); err != nil {
			t.Fatal(err)
		}
		skiff(t, "fleet", "join", "--upstream", up.URL, "--token-file", tokenFile, "--name", c.name, "--region", "r-"+c.name, "--kubeconfig", c.srv.Kubeconfig)
	}

	// Each step builds on the last: stop at the first that fails.
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	step("clusters register and turn Ready", func(t *testing.T) {
		waitFor(t, 90*time.Second, "three Ready clusters with nodes", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "clusters")
			if r.Code != 0 {
				return false, r.Stderr
			}
			lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
			if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME READY VERSION NODES AGE" {
				return false, r.Stdout
			}
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if len(f) != 5 || f[1] != "True" || !strings.HasPrefix(f[2], "v1.") || f[3] != "2" {
					return false, r.Stdout
				}
			}
			return true, ""
		})
	})

	must(t, up.Kubeconfig, "", "create", "namespace", "shop")
	must(t, up.Kubeconfig, app, "apply", "-f", "-")
	replicas := func(c *cluster) (int32, string, map[string]string, error) {
		d, err := c.srv.Client().AppsV1().Deployments("shop").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return -1, "", nil, err
		}
		return *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image, d.Labels, nil
	}
	wantSplit := func(t *testing.T, d time.Duration, want map[string]int32) {
		t.Helper()
		waitFor(t, d, fmt.Sprintf("replicas %v", want), func() (bool, string) {
			got := map[string]int32{}
			for _, c := range downs {
				n, _, _, err := replicas(c)
				if err != nil {
					n = -1
				}
				got[c.name] = n
			}
			return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
		})
	}

	step("divided by weight and overridden per cluster", func(t *testing.T) {
		wantSplit(t, 60*time.Second, map[string]int32{"east": 2, "west": 1, "north": 3})
		for _, c := range downs {
			_, image, l, err := replicas(c)
			if err != nil {
				t.Fatal(err)
			}
			want, tier := "registry.example.com/shop/web:v1", ""
			if c.name == "west" {
				want, tier = "mirror.west.example.com/shop/web:v2", "canary"
			}
			if image != want || l["tier"] != tier {
				t.Errorf("%s: image %s, tier label %q; want %s, %q", c.name, image, l["tier"], want, tier)
			}
			// The ConfigMap is a binding of its own: it may come a moment
			// after the Deployment.
			waitFor(t, 30*time.Second, c.name+" has ConfigMap web-config", func() (bool, string) {
				cm, err := c.srv.Client().CoreV1().ConfigMaps("shop").Get(context.Background(), "web-config", metav1.GetOptions{})
				return err == nil && cm.Data["greeting"] == "hello", fmt.Sprint(err)
			})
		}
	})

	step("status aggregated on the upstream", func(t *testing.T) {
		r := kubectl(t, up.Kubeconfig, "", "rollout", "status", "-n", "shop", "deployment/web", "--timeout", "120s")
		if r.Code != 0 || !strings.Contains(r.Stdout, "successfully rolled out") {
			t.Fatalf("rollout status on the upstream: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		r = kubectl(t, up.Kubeconfig, "", "get", "-n", "shop", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}/{.status.availableReplicas}/{.status.updatedReplicas}")
		if r.Stdout != "6/6/6" {
			t.Errorf("upstream deployment status ready/available/updated = %q, want 6/6/6", r.Stdout)
		}
		waitFor(t, 10*time.Second, "kubectl get resourcebindings showing the placement", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "resourcebindings", "-n", "shop")
			return strings.Contains(r.Stdout, "web-deployment") && strings.Contains(r.Stdout, "east=2,north=3,west=1 "), r.Stdout
		})
		if pods, err := up.Client().CoreV1().Pods("shop").List(context.Background(), metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
			t.Errorf("the upstream runs pods of its own: %v %v", len(pods.Items), err)
		}
	})

	step("divided by available capacity", func(t *testing.T) {
		// 640 MiB a replica: east holds 3 (2 GiB less web's 128 MiB),
		// west 6 (4 GiB less 64 MiB), north 9 (6 GiB less 192 MiB).
		must(t, up.Kubeconfig, batch, "apply", "-f", "-")
		defer func() {
			if t.Failed() {
				r := kubectl(t, up.Kubeconfig, "", "get", "clusters", "-o", "jsonpath={range .items[*]}{.metadata.name}: {.status.resourceSummary}{\"\\n\"}{end}")
				t.Logf("the clusters' capacity:\n%s", r.Stdout)
				r = kubectl(t, up.Kubeconfig, "", "get", "resourcebinding", "-n", "shop", "batch-deployment", "-o", "yaml")
				t.Logf("the binding:\n%s", r.Stdout)
			}
		}()
		waitFor(t, 60*time.Second, "batch divided 3:6:9", func() (bool, string) {
			got := map[string]int32{}
			for _, c := range downs {
				got[c.name] = -1
				if d, err := c.srv.Client().AppsV1().Deployments("shop").Get(context.Background(), "batch", metav1.GetOptions{}); err == nil {
					got[c.name] = *d.Spec.Replicas
				}
			}
			return fmt.Sprint(got) == "map[east:3 north:9 west:6]", fmt.Sprint(got)
		})
		must(t, up.Kubeconfig, batch, "delete", "-f", "-")
	})

	step("a change in a downstream is reverted", func(t *testing.T) {
		must(t, downs[0].srv.Kubeconfig, "", "scale", "-n", "shop", "deployment/web", "--replicas", "5")
		wantSplit(t, 30*time.Second, map[string]int32{"east": 2, "west": 1, "north": 3})
		waitFor(t, 30*time.Second, "the drift shown on the upstream", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "resourcebinding", "-n", "shop", "web-deployment", "-o", `jsonpath={.status.conditions[?(@.type=="Drifted")].reason}`)
			return r.Stdout == "DriftReverted", r.Stdout
		})
	})

	step("a dead cluster fails over and its share returns", func(t *testing.T) {
		north := downs[2]
		north.srv.Kill()
		// 6 s without heartbeats, then 4 s of toleration.
		wantSplitAlive := func(want map[string]int32) {
			waitFor(t, 60*time.Second, fmt.Sprintf("replicas %v", want), func() (bool, string) {
				got := map[string]int32{}
				for _, c := range downs[:2] {
					n, _, _, _ := replicas(c)
					got[c.name] = n
				}
				return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
			})
		}
		wantSplitAlive(map[string]int32{"east": 4, "west": 2})
		r := kubectl(t, up.Kubeconfig, "", "get", "cluster", "north", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if r.Stdout != "Unknown" {
			t.Errorf("north's Ready = %q, want Unknown", r.Stdout)
		}
		north.srv.Start()
		wantSplit(t, 90*time.Second, map[string]int32{"east": 2, "west": 1, "north": 3})
	})

	step("a partitioned cluster converges without duplicates, its share returning gradually", func(t *testing.T) {
		west := downs[1]
		// Half of west's share back every 2 s once it is Ready again.
		must(t, up.Kubeconfig, "", "patch", "-n", "shop", "propagationpolicy", "web", "--type=merge",
			"-p", `{"spec":{"failover":{"cluster":{"return":"Gradual","returnStepPercent":50,"returnStepSeconds":2}}}}`)
		west.srv.Signal(syscall.SIGSTOP)
		must(t, up.Kubeconfig, "", "scale", "-n", "shop", "deployment/web", "--replicas", "12")
		must(t, up.Kubeconfig, "", "create", "configmap", "-n", "shop", "web-extra", "--from-literal=a=b")
		must(t, up.Kubeconfig, "", "patch", "-n", "shop", "propagationpolicy", "web", "--type=json",
			"-p", `[{"op":"add","path":"/spec/resourceSelectors/-","value":{"apiVersion":"v1","kind":"ConfigMap","name":"web-extra"}}]`)
		time.Sleep(12 * time.Second) // the partition outlasts grace and toleration
		west.srv.Signal(syscall.SIGCONT)
		// West's 2 come back one at a time, the others keeping the rest
		// meanwhile: a step where west has 1 of 12. (West's first state
		// is the copy it kept through the partition, 1 of the old 6.)
		var seen []string
		stepped := false
		waitFor(t, 90*time.Second, "replicas east 4, west 2, north 6 after a step with west 1 of 12", func() (bool, string) {
			got := map[string]int32{}
			var total int32
			for _, c := range downs {
				n, _, _, _ := replicas(c)
				got[c.name] = n
				total += max(n, 0)
			}
			state := fmt.Sprint(got)
			if len(seen) == 0 || seen[len(seen)-1] != state {
				seen = append(seen, state)
			}
			stepped = stepped || got["west"] == 1 && total == 12
			return state == "map[east:4 north:6 west:2]" && stepped, strings.Join(seen, " → ")
		})
		t.Logf("west's return: %s", strings.Join(seen, " → "))
		for _, c := range downs {
			list, err := c.srv.Client().AppsV1().Deployments("shop").List(context.Background(), metav1.ListOptions{})
			if err != nil || len(list.Items) != 1 {
				t.Errorf("%s: %d Deployments in shop (%v), want 1", c.name, len(list.Items), err)
			}
			waitFor(t, 30*time.Second, c.name+" has web-extra", func() (bool, string) {
				_, err := c.srv.Client().CoreV1().ConfigMaps("shop").Get(context.Background(), "web-extra", metav1.GetOptions{})
				return err == nil, fmt.Sprint(err)
			})
		}
	})

	step("deleting on the upstream deletes everywhere", func(t *testing.T) {
		must(t, up.Kubeconfig, "", "delete", "-n", "shop", "deployment", "web")
		waitFor(t, 60*time.Second, "no copy left", func() (bool, string) {
			left := []string{}
			for _, c := range downs {
				if _, _, _, err := replicas(c); err == nil {
					left = append(left, c.name)
				}
			}
			return len(left) == 0, strings.Join(left, ",")
		})
	})

	step("the proxy path reaches a cluster as the user, RBAC deciding", func(t *testing.T) {
		// The admin, through `skiff kubectl --cluster`.
		out := skiff(t, "kubectl", "--kubeconfig", up.Kubeconfig, "--cluster", "east", "get", "nodes", "-o", "name")
		if !strings.Contains(out, "node/node-") {
			t.Fatalf("skiff kubectl --cluster east get nodes:\n%s", out)
		}
		// A service account allowed clusters/proxy of east only, read-only.
		must(t, up.Kubeconfig, `
apiVersion: v1
kind: ServiceAccount
metadata: {name: ops, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: east-reader}
rules:
- apiGroups: [fleet.skiff.dev]
  resources: [clusters/proxy]
  resourceNames: [east]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-east-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: east-reader}
subjects: [{kind: ServiceAccount, name: ops, namespace: default}]
`, "apply", "-f", "-")
		// On east, that user may view.
		must(t, downs[0].srv.Kubeconfig, "", "create", "clusterrolebinding", "ops-view", "--clusterrole", "view", "--user", "system:serviceaccount:default:ops")
		token := strings.TrimSpace(must(t, up.Kubeconfig, "", "create", "token", "ops", "-n", "default").Stdout)
		rc := up.RESTConfig()
		kc := clientcmdapi.NewConfig()
		kc.Clusters["up"] = &clientcmdapi.Cluster{Server: up.URL, CertificateAuthorityData: rc.CAData}
		kc.AuthInfos["ops"] = &clientcmdapi.AuthInfo{Token: token}
		kc.Contexts["ops"] = &clientcmdapi.Context{Cluster: "up", AuthInfo: "ops"}
		kc.CurrentContext = "ops"
		opsConfig := filepath.Join(t.TempDir(), "ops.yaml")
		if err := clientcmd.WriteToFile(*kc, opsConfig); err != nil {
			t.Fatal(err)
		}
		proxy := func(cluster string, args ...string) (string, error) {
			out, err := exec.Command(e2eutil.Binary(t), append([]string{"kubectl", "--kubeconfig", opsConfig, "--cluster", cluster}, args...)...).CombinedOutput()
			return string(out), err
		}
		if out, err := proxy("east", "get", "configmaps", "-n", "shop", "-o", "name"); err != nil || !strings.Contains(out, "configmap/web-config") {
			t.Errorf("ops reading east through the proxy: %v\n%s", err, out)
		}
		// (--raw: kubectl's discovery asks for a media type the refusal
		// is not written in, and prints "unknown" for its message.)
		if out, err := proxy("west", "get", "--raw", "/api/v1/namespaces"); err == nil || !strings.Contains(out, `cannot get resource "clusters/proxy"`) {
			t.Errorf("ops reaching west (no clusters/proxy there): %v\n%s", err, out)
		}
		if out, err := proxy("east", "delete", "namespace", "shop"); err == nil || !strings.Contains(out, `cannot delete resource "clusters/proxy"`) {
			t.Errorf("ops deleting on east (get only upstream): %v\n%s", err, out)
		}
		if out, err := proxy("east", "get", "secrets", "-n", "kube-system"); err == nil || !strings.Contains(out, `User "system:serviceaccount:default:ops" cannot list resource "secrets"`) {
			t.Errorf("ops listing east's secrets (east's RBAC: view): %v\n%s", err, out)
		}
	})

	step("refusals name the cluster, precedence shows, the upstream survives kill -9", func(t *testing.T) {
		// west admits no more ConfigMaps in shop.
		n := len(strings.Fields(must(t, downs[1].srv.Kubeconfig, "", "get", "configmaps", "-n", "shop", "-o", "name").Stdout))
		must(t, downs[1].srv.Kubeconfig, "", "create", "quota", "cm-limit", "-n", "shop", fmt.Sprintf("--hard=configmaps=%d", n))
		must(t, up.Kubeconfig, `
apiVersion: fleet.skiff.dev/v1alpha1
kind: ClusterPropagationPolicy
metadata: {name: tests-everywhere}
spec:
  resourceSelectors:
  - apiVersion: v1
    kind: ConfigMap
    labelSelector: {matchExpressions: [{key: t, operator: In, values: [quota, prec, after]}]}
  placement: {clusterAffinity: {clusterNames: [east, west, north]}}
---
apiVersion: fleet.skiff.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: prec-east, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: v1, kind: ConfigMap, name: precedence}]
  placement: {clusterAffinity: {clusterNames: [east]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: quota-test, namespace: shop, labels: {t: quota}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: precedence, namespace: shop, labels: {t: prec}}
`, "apply", "-f", "-")
		waitFor(t, 60*time.Second, "the quota refusal on the binding", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "rb", "-n", "shop", "quota-test-configmap", "-o", `jsonpath={.status.conditions[?(@.type=="FullyApplied")].message}`)
			return strings.Contains(r.Stdout, "west: ") && strings.Contains(r.Stdout, "exceeded quota"), r.Stdout
		})
		waitFor(t, 30*time.Second, "quota-test on east and north while west refuses it", func() (bool, string) {
			for _, c := range []*cluster{downs[0], downs[2]} {
				if _, err := c.srv.Client().CoreV1().ConfigMaps("shop").Get(context.Background(), "quota-test", metav1.GetOptions{}); err != nil {
					return false, c.name + ": " + err.Error()
				}
			}
			return true, ""
		})
		waitFor(t, 30*time.Second, "the namespace's PropagationPolicy placing precedence on east only", func() (bool, string) {
			r := kubectl(t, up.Kubeconfig, "", "get", "rb", "-n", "shop", "precedence-configmap", "-o", "jsonpath={.spec.policy.kind}/{.spec.policy.name} {.status.placementSummary}")
			return r.Stdout == "PropagationPolicy/prec-east east", r.Stdout + r.Stderr
		})

		up.Kill()
		up.Start()
		must(t, up.Kubeconfig, "", "create", "configmap", "after-restart", "-n", "shop", "--from-literal=a=b")
		must(t, up.Kubeconfig, "", "label", "configmap", "after-restart", "-n", "shop", "t=after")
		waitFor(t, 60*time.Second, "after-restart on east and north", func() (bool, string) {
			for _, c := range []*cluster{downs[0], downs[2]} {
				if _, err := c.srv.Client().CoreV1().ConfigMaps("shop").Get(context.Background(), "after-restart", metav1.GetOptions{}); err != nil {
					return false, c.name + ": " + err.Error()
				}
			}
			return true, ""
		})
		r := must(t, up.Kubeconfig, "", "get", "rb", "-n", "shop", "-o", "name")
		for _, want := range []string{"web-config-configmap", "web-extra-configmap", "quota-test-configmap", "precedence-configmap"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("after kill -9 of the upstream, binding %s is gone:\n%s", want, r.Stdout)
			}
		}
	})

	step("a revoked agent is refused", func(t *testing.T) {
		ready := func() string {
			return kubectl(t, up.Kubeconfig, "", "get", "cluster", "east", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).Stdout
		}
		waitFor(t, 60*time.Second, "east Ready before the revocation", func() (bool, string) { return ready() == "True", ready() })
		skiff(t, "fleet", "revoke", "east", "--kubeconfig", up.Kubeconfig)
		waitFor(t, 60*time.Second, "east not Ready", func() (bool, string) { return ready() == "Unknown", ready() })
		time.Sleep(5 * time.Second) // more than three of its heartbeats
		if got := ready(); got != "Unknown" {
			t.Errorf("east's Ready = %s after its agent was revoked; its agent still reports", got)
		}
		token := filepath.Join(t.TempDir(), "stale")
		if err := os.WriteFile(token, []byte("SKF1"+strings.Repeat("0", 64)+"::a.b.c"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(e2eutil.Binary(t), "fleet", "join", "--upstream", up.URL, "--token-file", token, "--name", "east", "--kubeconfig", downs[0].srv.Kubeconfig).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "did not present the CA") {
			t.Errorf("join with a token for another CA: %v\n%s", err, out)
		}
	})
}
