package apiserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// shop is testdata/shop rendered for one kubectl version: every "shop" in
// the manifests becomes "shop-<tag>", so the versions' namespaces,
// cluster-scoped objects and CRD group do not collide on the shared server.
type shop struct {
	crdDir, appDir string
	ns             string // namespace
	group          string // the Widget CRD's API group
	tag            string
}

func renderShop(t *testing.T, tag string) shop {
	t.Helper()
	out := t.TempDir()
	s := shop{
		crdDir: filepath.Join(out, "crd"),
		appDir: filepath.Join(out, "app"),
		ns:     "shop-" + tag,
		group:  "shop-" + tag + ".example.com",
		tag:    tag,
	}
	for _, sub := range []string{"crd", "app"} {
		src := filepath.Join("testdata", "shop", sub)
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			rendered := strings.ReplaceAll(string(data), "shop", "shop-"+tag)
			if err := os.WriteFile(filepath.Join(out, sub, e.Name()), []byte(rendered), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// kubectl runs one kubectl binary against one server and reports failures
// with the full command and output.
type kubectl struct {
	t          *testing.T
	k          e2eutil.Kubectl
	kubeconfig string
}

func (c kubectl) run(args ...string) e2eutil.Result {
	c.t.Helper()
	return c.k.Run(c.t, c.kubeconfig, "", args...)
}

// ok runs kubectl, fails the test unless it exits 0, and returns stdout.
func (c kubectl) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != 0 {
		c.t.Fatalf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// fails runs kubectl, fails the test unless it exits with code, and returns
// stdout and stderr.
func (c kubectl) fails(code int, args ...string) e2eutil.Result {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != code {
		c.t.Fatalf("kubectl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, code, r.Stdout, r.Stderr)
	}
	return r
}

// eventually retries kubectl until its stdout satisfies cond (30 s at most).
func (c kubectl) eventually(what string, cond func(stdout string) bool, args ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.run(args...)
		if r.Code == 0 && cond(r.Stdout) {
			return r.Stdout
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; last `kubectl %s`: exit %d\nstdout:\n%s\nstderr:\n%s", what, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantLines checks out consists of exactly the lines want (in order).
func wantLines(t *testing.T, what, out string, want []string) {
	t.Helper()
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// wantMatch checks out matches every regular expression.
func wantMatch(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("%s: output does not match %q:\n%s", what, p, out)
		}
	}
}

// table splits a kubectl table into its header and rows, each as
// whitespace-separated fields.
func table(t *testing.T, out string) (header string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a table with a header and rows, got:\n%s", out)
	}
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return strings.Join(strings.Fields(lines[0]), " "), rows
}

func testKubectl(t *testing.T, srv *e2eutil.Server, k e2eutil.Kubectl) {
	tag := "k" + strings.ReplaceAll(k.Name, ".", "")
	if k.Name == "embedded" {
		tag = "kemb"
	}
	s := renderShop(t, tag)
	ns := s.ns
	// applied is what `kubectl apply -f app/` prints, object by object in
	// file order, before the verb.
	applied := []string{
		"namespace/" + ns,
		"serviceaccount/web",
		"role.rbac.authorization.k8s.io/web-config-reader",
		"rolebinding.rbac.authorization.k8s.io/web-config-reader",
		"configmap/web-config",
		"secret/web-credentials",
		"priorityclass.scheduling.k8s.io/" + ns + "-high",
		"deployment.apps/web",
		"service/web",
		"service/web-nodeport",
		"poddisruptionbudget.policy/web",
		"networkpolicy.networking.k8s.io/web-ingress",
		"service/db",
		"statefulset.apps/db",
		"job.batch/migrate",
		"cronjob.batch/report",
		"ingressclass.networking.k8s.io/" + ns + "-nginx",
		"ingress.networking.k8s.io/web",
		"widget." + s.group + "/gizmo",
	}
	with := func(verb string) []string {
		var out []string
		for _, a := range applied {
			out = append(out, a+" "+verb)
		}
		return out
	}

	ok := t.Run("apply", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		crd := "widgets." + s.group
		wantLines(t, "apply CRD", c.ok("apply", "-f", s.crdDir), []string{
			"customresourcedefinition.apiextensions.k8s.io/" + crd + " created"})
		// kubectl wait gives up at once, rather than waiting, when it first
		// reads a CRD whose status.conditions is still null (a field
		// without omitempty, null until the establishing controller's first
		// write, as in any Kubernetes): a script that applies a CRD and
		// waits at once must retry, and so does this test.
		c.eventually("the CRD Established", func(out string) bool { return strings.Contains(out, "condition met") },
			"wait", "--for", "condition=Established", "--timeout=60s", "crd/"+crd)
		wantLines(t, "first apply", c.ok("apply", "-f", s.appDir), with("created"))
		// Re-applying changes nothing, except where upstream kubectl's
		// three-way merge always sends a patch (as against any Kubernetes):
		// a Secret's stringData (never stored), PriorityClass globalDefault
		// false (omitempty), a PodDisruptionBudget's selector (patchStrategy
		// replace) and a StatefulSet's volumeClaimTemplates (an atomic list
		// the server adds defaults to).
		second := with("unchanged")
		for i, a := range applied {
			switch a {
			case "secret/web-credentials", "priorityclass.scheduling.k8s.io/" + ns + "-high",
				"poddisruptionbudget.policy/web", "statefulset.apps/db":
				second[i] = a + " configured"
			}
		}
		wantLines(t, "second apply", c.ok("apply", "-f", s.appDir), second)

		// Server-side apply takes the objects over from client-side apply ...
		var files []string
		for _, f := range []string{"00-namespace", "10-rbac", "20-config", "30-priorityclass", "40-web", "60-batch", "70-ingress", "80-widget"} {
			files = append(files, "-f", filepath.Join(s.appDir, f+".yaml"))
		}
		var serverSide []string
		for _, a := range with("serverside-applied") {
			if !strings.HasPrefix(a, "service/db ") && !strings.HasPrefix(a, "statefulset.apps/db ") {
				serverSide = append(serverSide, a)
			}
		}
		wantLines(t, "server-side apply", c.ok(append([]string{"apply", "--server-side"}, files...)...), serverSide)
		// ... except the StatefulSet's volumeClaimTemplates, which the
		// client-side apply above just set to a different (undefaulted)
		// value: upstream reports that as a conflict, and --force-conflicts
		// takes the field over.
		db := filepath.Join(s.appDir, "50-db.yaml")
		r := c.fails(1, "apply", "--server-side", "-f", db)
		wantMatch(t, "server-side apply conflict", r.Stderr,
			regexp.QuoteMeta(`error: Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.volumeClaimTemplates`))
		wantLines(t, "server-side apply --force-conflicts", c.ok("apply", "--server-side", "--force-conflicts", "-f", db),
			[]string{"service/db serverside-applied", "statefulset.apps/db serverside-applied"})
	})
	if !ok {
		return
	}

	t.Run("diff", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		r := c.fails(0, "diff", "-f", s.appDir)
		if r.Stdout != "" {
			t.Errorf("diff of the applied manifests is not empty:\n%s", r.Stdout)
		}
		web, err := os.ReadFile(filepath.Join(s.appDir, "40-web.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		changed := filepath.Join(t.TempDir(), "web.yaml")
		if err := os.WriteFile(changed, []byte(strings.Replace(string(web), "replicas: 2", "replicas: 4", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		r = c.fails(1, "diff", "-f", changed)
		wantMatch(t, "diff after a local change", r.Stdout, `(?m)^-\s+replicas: 2$`, `(?m)^\+\s+replicas: 4$`, `apps\.v1\.Deployment\.`+ns+`\.web`)
	})

	t.Run("get", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		for _, tc := range []struct {
			args   []string
			header string
			row    []string // leading fields of the first row
		}{
			{[]string{"deployment", "web"}, "NAME READY UP-TO-DATE AVAILABLE AGE", []string{"web", "0/2"}},
			{[]string{"deployment", "web", "-o", "wide"}, "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR", nil},
			{[]string{"statefulset", "db"}, "NAME READY AGE", []string{"db", "0/2"}},
			{[]string{"statefulset", "db", "-o", "wide"}, "NAME READY AGE CONTAINERS IMAGES", nil},
			{[]string{"service", "web"}, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE", []string{"web", "ClusterIP"}},
			{[]string{"service", "db", "-o", "wide"}, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR", []string{"db", "ClusterIP", "None", "<none>", "5432/TCP"}},
			{[]string{"job", "migrate"}, "NAME STATUS COMPLETIONS DURATION AGE", []string{"migrate"}},
			{[]string{"cronjob", "report"}, "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE", []string{"report", "0", "3", "*", "*", "*", "Etc/UTC", "False", "0", "<none>"}},
			{[]string{"ingress", "web"}, "NAME CLASS HOSTS ADDRESS PORTS AGE", []string{"web", ns + "-nginx", ns + ".example.test"}},
			{[]string{"ingressclass", ns + "-nginx"}, "NAME CONTROLLER PARAMETERS AGE", []string{ns + "-nginx", "k8s.io/ingress-nginx", "<none>"}},
			{[]string{"pdb", "web"}, "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE", []string{"web", "1", "N/A"}},
			{[]string{"networkpolicy", "web-ingress"}, "NAME POD-SELECTOR AGE", []string{"web-ingress", "app=web"}},
			{[]string{"configmap", "web-config"}, "NAME DATA AGE", []string{"web-config", "2"}},
			{[]string{"secret", "web-credentials"}, "NAME TYPE DATA AGE", []string{"web-credentials", "Opaque", "2"}},
			{[]string{"serviceaccount", "web"}, "NAME AGE", []string{"web"}},
			{[]string{"rolebinding", "web-config-reader", "-o", "wide"}, "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS", []string{"web-config-reader", "Role/web-config-reader"}},
			{[]string{"priorityclass", ns + "-high"}, "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY", []string{ns + "-high", "100000", "false"}},
			// The CRD's additionalPrinterColumns; status.phase is unset so far.
			{[]string{"widgets." + s.group, "gizmo"}, "NAME SIZE COLOR PHASE AGE", []string{"gizmo", "3", "red"}},
			{[]string{"wdg"}, "NAME SIZE COLOR PHASE AGE", []string{"gizmo", "3", "red"}},
		} {
			args := append([]string{"get", "-n", ns}, tc.args...)
			header, rows := table(t, c.ok(args...))
			if header != tc.header {
				t.Errorf("kubectl %s: header %q, want %q", strings.Join(args, " "), header, tc.header)
			}
			if len(rows[0]) < len(tc.row) || strings.Join(rows[0][:len(tc.row)], " ") != strings.Join(tc.row, " ") {
				t.Errorf("kubectl %s: first row %q, want it to start with %q", strings.Join(args, " "), rows[0], tc.row)
			}
		}
		_, rows := table(t, c.ok("get", "-n", ns, "deployment", "web", "-o", "wide"))
		if got := strings.Join(rows[0][5:], " "); got != "web,metrics nginx:1.25,nginx/nginx-prometheus-exporter:1.1 app=web" {
			t.Errorf("get deployment -o wide: containers, images, selector = %q", got)
		}
		_, rows = table(t, c.ok("get", "-n", ns, "service", "web-nodeport"))
		wantMatch(t, "NodePort service", strings.Join(rows[0], " "), `^web-nodeport NodePort 10\.43\.\d+\.\d+ <none> 80:3\d{4}/TCP `)

		var obj map[string]any
		if err := yaml.Unmarshal([]byte(c.ok("get", "-n", ns, "deployment", "web", "-o", "yaml")), &obj); err != nil {
			t.Fatalf("get -o yaml: %v", err)
		}
		if obj["kind"] != "Deployment" || field(obj, "spec", "replicas") != float64(2) || field(obj, "metadata", "namespace") != ns {
			t.Errorf("get -o yaml: kind %v, spec.replicas %v, namespace %v", obj["kind"], field(obj, "spec", "replicas"), field(obj, "metadata", "namespace"))
		}
		var list struct {
			Kind  string           `json:"kind"`
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal([]byte(c.ok("get", "-n", ns, "widgets."+s.group, "-o", "json")), &list); err != nil {
			t.Fatalf("get -o json: %v", err)
		}
		if list.Kind != "List" || len(list.Items) != 1 || field(list.Items[0], "spec", "size") != float64(3) {
			t.Errorf("get widgets -o json: kind %q, %d items, %v", list.Kind, len(list.Items), list.Items)
		}
		// The CRD schema's default fills what the manifest left out.
		if got := c.ok("get", "-n", ns, "widget."+s.group, "gizmo", "-o", "jsonpath={.apiVersion} {.kind} {.spec.color}"); got != s.group+"/v1 Widget red" {
			t.Errorf("get widget -o jsonpath: %q", got)
		}
	})

	t.Run("describe", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantMatch(t, "describe deployment", c.ok("describe", "-n", ns, "deployment", "web"),
			`(?m)^Name:\s+web$`, `(?m)^Namespace:\s+`+ns+`$`, `(?m)^Replicas:\s+2 desired`,
			`(?m)^StrategyType:\s+RollingUpdate$`, `(?m)^RollingUpdateStrategy:\s+0 max unavailable, 1 max surge$`,
			`(?m)^\s+Image:\s+nginx:1\.25$`, `(?m)^\s+Priority Class Name:\s+`+ns+`-high$`)
		wantMatch(t, "describe statefulset", c.ok("describe", "-n", ns, "statefulset", "db"),
			`(?m)^Name:\s+db$`, `(?m)^Volume Claims:$`, `(?m)^\s+Name:\s+data$`, `(?m)^\s+Capacity:\s+1Gi$`)
		wantMatch(t, "describe widget", c.ok("describe", "-n", ns, "widget."+s.group, "gizmo"),
			`(?m)^Kind:\s+Widget$`, `(?m)^API Version:\s+`+regexp.QuoteMeta(s.group)+`/v1$`, `(?m)^\s+Size:\s+3$`)
		wantMatch(t, "describe service", c.ok("describe", "-n", ns, "service", "web-nodeport"),
			`(?m)^Type:\s+NodePort$`, `(?m)^NodePort:\s+http\s+3\d{4}/TCP$`)
	})

	t.Run("label-annotate", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantLines(t, "label", c.ok("label", "-n", ns, "deployment", "web", "tier=frontend"), []string{"deployment.apps/web labeled"})
		wantLines(t, "get -l", c.ok("get", "-n", ns, "deployments", "-l", "tier=frontend", "-o", "name"), []string{"deployment.apps/web"})
		r := c.fails(1, "label", "-n", ns, "deployment", "web", "tier=backend")
		wantMatch(t, "label without --overwrite", r.Stderr, regexp.QuoteMeta("error: 'tier' already has a value (frontend), and --overwrite is false"))
		wantLines(t, "label --overwrite", c.ok("label", "-n", ns, "deployment", "web", "tier=backend", "--overwrite"), []string{"deployment.apps/web labeled"})
		// kubectl 1.27 prints "annotate" where later versions print "annotated".
		wantMatch(t, "annotate", c.ok("annotate", "-n", ns, "deployment", "web", "example.com/owner=team-a"), `^deployment\.apps/web annotated?\n$`)
		got := c.ok("get", "-n", ns, "deployment", "web", "-o", `jsonpath={.metadata.labels.tier} {.metadata.annotations.example\.com/owner}`)
		if got != "backend team-a" {
			t.Errorf("label and annotation after label/annotate: %q", got)
		}
	})

	t.Run("scale", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantLines(t, "scale", c.ok("scale", "-n", ns, "deployment", "web", "--replicas=3"), []string{"deployment.apps/web scaled"})
		if got := c.ok("get", "-n", ns, "deployment", "web", "-o", "jsonpath={.spec.replicas}"); got != "3" {
			t.Errorf("spec.replicas after scale: %q", got)
		}
		r := c.fails(1, "scale", "-n", ns, "deployment", "web", "--current-replicas=2", "--replicas=5")
		wantMatch(t, "scale with a wrong --current-replicas", r.Stderr, regexp.QuoteMeta("Expected replicas to be 2, was 3"))
		// The deployment controller follows: the ReplicaSet wants 3 pods.
		c.eventually("the ReplicaSet to be scaled to 3", func(out string) bool { return out == "3" },
			"get", "-n", ns, "replicasets", "-l", "app=web", "-o", "jsonpath={.items[*].spec.replicas}")
	})

	t.Run("patch", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		// Strategic merge: containers merge by name, so "metrics" stays.
		wantLines(t, "strategic patch", c.ok("patch", "-n", ns, "deployment", "web", "-p",
			`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}`), []string{"deployment.apps/web patched"})
		if got := c.ok("get", "-n", ns, "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[*].image}"); got != "nginx:1.27 nginx/nginx-prometheus-exporter:1.1" {
			t.Errorf("images after strategic patch: %q", got)
		}
		wantLines(t, "merge patch", c.ok("patch", "-n", ns, "configmap", "web-config", "--type", "merge", "-p",
			`{"data":{"LOG_LEVEL":"debug","EXTRA":"1"}}`), []string{"configmap/web-config patched"})
		if got := c.ok("get", "-n", ns, "configmap", "web-config", "-o", "jsonpath={.data.LOG_LEVEL} {.data.EXTRA}"); got != "debug 1" {
			t.Errorf("configmap after merge patch: %q", got)
		}
		wantLines(t, "json patch", c.ok("patch", "-n", ns, "service", "web", "--type", "json", "-p",
			`[{"op":"replace","path":"/spec/ports/0/port","value":8080}]`), []string{"service/web patched"})
		if got := c.ok("get", "-n", ns, "service", "web", "-o", "jsonpath={.spec.ports[0].port}"); got != "8080" {
			t.Errorf("service port after json patch: %q", got)
		}
		r := c.fails(1, "patch", "-n", ns, "service", "web", "--type", "json", "-p", `[{"op":"test","path":"/spec/ports/0/port","value":1}]`)
		// Upstream answers a failed JSON patch with a bare 422 whose message
		// does not say which operation failed.
		wantLines(t, "failed json patch test op", r.Stderr, []string{"The request is invalid: the server rejected our request due to an error in our request"})

		widget := "widget." + s.group + "/gizmo"
		wantLines(t, "merge patch of a custom resource", c.ok("patch", "-n", ns, widget, "--type", "merge", "-p", `{"spec":{"size":5}}`), []string{widget + " patched"})
		// The status subresource: status is ignored on the main resource ...
		wantLines(t, "status through the main resource", c.ok("patch", "-n", ns, widget, "--type", "merge", "-p", `{"status":{"phase":"Broken"}}`), []string{widget + " patched (no change)"})
		// ... and set through /status.
		wantLines(t, "status subresource", c.ok("patch", "-n", ns, widget, "--subresource", "status", "--type", "merge", "-p", `{"status":{"phase":"Ready"}}`), []string{widget + " patched"})
		_, rows := table(t, c.ok("get", "-n", ns, widget))
		if got := strings.Join(rows[0][:4], " "); got != "gizmo 5 red Ready" {
			t.Errorf("widget printer columns after patches: %q", got)
		}
		r = c.fails(1, "patch", "-n", ns, widget, "--type", "merge", "-p", `{"spec":{"size":1000}}`)
		wantMatch(t, "schema validation of a custom resource", r.Stderr,
			regexp.QuoteMeta(`The Widget "gizmo" is invalid: spec.size: Invalid value: 1000: spec.size in body should be less than or equal to 100`))
		r = c.fails(1, "patch", "-n", ns, widget, "-p", `{"spec":{"size":4}}`)
		wantMatch(t, "strategic merge patch of a custom resource", r.Stderr,
			regexp.QuoteMeta("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"))
	})

	t.Run("watch", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		w := k.Start(t, srv.Kubeconfig, "get", "-n", ns, "configmaps", "-w")
		if _, seen, ok := w.Next("web-config", 30*time.Second); !ok {
			t.Fatalf("get -w: no initial line for web-config; saw %q", seen)
		}
		wantLines(t, "create configmap", c.ok("create", "-n", ns, "configmap", "watched", "--from-literal=a=b"), []string{"configmap/watched created"})
		line, seen, ok := w.Next("watched", 30*time.Second)
		if !ok {
			t.Fatalf("get -w: no event line for the new configmap; saw %q", seen)
		}
		if f := strings.Fields(line); len(f) < 2 || f[0] != "watched" || f[1] != "1" {
			t.Errorf("get -w event line %q, want NAME DATA AGE of the new configmap", line)
		}
		w.Stop()
	})

	t.Run("delete", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		// Foreground: the Deployment goes only after its ReplicaSet.
		c.eventually("the deployment's ReplicaSet", func(out string) bool { return out != "" },
			"get", "-n", ns, "replicasets", "-l", "app=web", "-o", "name")
		r := c.fails(0, "delete", "-n", ns, "deployment", "web", "--cascade=foreground")
		wantMatch(t, "delete --cascade=foreground", r.Stdout, `^deployment.apps "web" deleted`)
		if out := c.ok("get", "-n", ns, "replicasets", "-l", "app=web", "-o", "name"); out != "" {
			t.Errorf("ReplicaSets left after a foreground delete of their Deployment:\n%s", out)
		}
		// Orphan: the StatefulSet goes, its pod stays without an owner.
		c.eventually("the statefulset's first pod", func(out string) bool { return out == "db-0" },
			"get", "-n", ns, "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.name}")
		r = c.fails(0, "delete", "-n", ns, "statefulset", "db", "--cascade=orphan")
		wantMatch(t, "delete --cascade=orphan", r.Stdout, `^statefulset.apps "db" deleted`)
		if out := c.ok("get", "-n", ns, "pod", "db-0", "-o", "jsonpath={.metadata.ownerReferences}"); out != "" {
			t.Errorf("orphaned pod db-0 still has owner references: %s", out)
		}
		c.fails(1, "get", "-n", ns, "statefulset", "db")
	})

	t.Run("explain", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantMatch(t, "explain deployment.spec.strategy", c.ok("explain", "deployment.spec.strategy"),
			`(?m)^KIND:\s+Deployment$`, `(?m)^VERSION:\s+v1$`, `(?m)^FIELD:\s+strategy\s+<DeploymentStrategy>$`,
			`(?m)^DESCRIPTION:$`, `(?m)^\s+rollingUpdate\s+<RollingUpdateDeployment>$`, `(?m)^\s+type\s+<string>$`)
		wantMatch(t, "explain widget", c.ok("explain", "widget", "--api-version", s.group+"/v1"),
			`(?m)^KIND:\s+Widget$`, `(?m)^VERSION:\s+v1$`, `Widget is a unit of stock the shop-`+tag+` sells\.`, `(?m)^\s+spec\s+<Object>$`)
		wantMatch(t, "explain widget.spec", c.ok("explain", "widget.spec", "--api-version", s.group+"/v1"),
			`WidgetSpec is the desired state of a widget\.`, `(?m)^\s+size\s+<integer>\s+-required-$`,
			`Size is the number of units the widget holds\.`, `(?m)^\s+color\s+<string>$`)
	})

	t.Run("api-resources", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantMatch(t, "api-resources", c.ok("api-resources"),
			`(?m)^configmaps\s+cm\s+v1\s+true\s+ConfigMap$`,
			`(?m)^namespaces\s+ns\s+v1\s+false\s+Namespace$`,
			`(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$`,
			`(?m)^cronjobs\s+cj\s+batch/v1\s+true\s+CronJob$`,
			`(?m)^ingresses\s+ing\s+networking\.k8s\.io/v1\s+true\s+Ingress$`,
			`(?m)^roles\s+rbac\.authorization\.k8s\.io/v1\s+true\s+Role$`,
			`(?m)^customresourcedefinitions\s+crd,crds\s+apiextensions\.k8s\.io/v1\s+false\s+CustomResourceDefinition$`,
			`(?m)^widgets\s+wdg\s+`+regexp.QuoteMeta(s.group)+`/v1\s+true\s+Widget$`)
		wantLines(t, "api-resources --api-group", c.ok("api-resources", "--api-group", s.group, "-o", "name"), []string{"widgets." + s.group})
	})

	t.Run("auth", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		wantLines(t, "auth can-i '*' '*'", c.ok("auth", "can-i", "*", "*"), []string{"yes"})
		sa := "system:serviceaccount:" + ns + ":web"
		wantLines(t, "service account may list secrets", c.ok("auth", "can-i", "list", "secrets", "-n", ns, "--as", sa), []string{"yes"})
		r := c.fails(1, "auth", "can-i", "delete", "secrets", "-n", ns, "--as", sa)
		wantLines(t, "service account may not delete secrets", r.Stdout, []string{"no"})
	})

	t.Run("delete-all", func(t *testing.T) {
		c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
		out := c.ok("delete", "-f", s.appDir, "--ignore-not-found", "--wait=false")
		wantMatch(t, "delete -f", out, `(?m)^namespace "`+ns+`" deleted`, `(?m)^ingressclass.networking.k8s.io "`+ns+`-nginx" deleted`)
		// The CRD goes too, so the next version's Widget kind and short
		// name are not ambiguous.
		wantMatch(t, "delete CRD", c.ok("delete", "-f", s.crdDir, "--timeout=60s"), `^customresourcedefinition.apiextensions.k8s.io "widgets.`+regexp.QuoteMeta(s.group)+`" deleted`)
	})
}

// field walks nested maps.
func field(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
