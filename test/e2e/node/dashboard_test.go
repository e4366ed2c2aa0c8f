package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/vishvananda/netlink"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestDashboard drives the web dashboard in a real browser (Debian's
// chromium, headless, through chromedp) against the package's server: the
// login URL `skiff dashboard` prints, a Deployment scaled with kubectl
// showing on the page, a pod's logs streaming, a terminal, a YAML edit
// refused by the API with the error at its field, and a read-only user
// refused an action with the API's 403 message. Screenshots of each page go
// to SKIFF_ARTIFACTS (default bin/artifacts/dashboard).
func TestDashboard(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	browser := chromium(t, the.port)
	churnHostNetwork(t)
	base := fmt.Sprintf("https://127.0.0.1:%d/dashboard/", the.port)

	// The page is public; the API behind it is not.
	if code, _, err := anonymousGet(t, base); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s without credentials: %d %v, want 200 (the page holds no data)", base, code, err)
	}
	if code, _, err := anonymousGet(t, fmt.Sprintf("https://127.0.0.1:%d/api/v1/namespaces/%s/pods", the.port, ns)); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("anonymous list of pods: %d %v, want 401", code, err)
	}

	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "main", Image: busyboxImage, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"},
				}}},
			},
		},
	}
	if _, err := the.client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var podName string
	eventually(t, podStart, "a running pod of Deployment web", func() (bool, string) {
		pods, err := the.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		podName = pods.Items[0].Name
		return pods.Items[0].Status.Phase == corev1.PodRunning, statusSummary(&pods.Items[0])
	})

	admin := loginURL(t)
	if !strings.HasPrefix(admin, base+"#token=") {
		t.Fatalf("skiff dashboard printed %q, want %s#token=…", admin, base)
	}

	tab, cancel := browser.tab(t)
	defer cancel()
	shot := browser.screenshots(t, tab)

	// Without a token: the login page.
	load(t, tab, "open the page without a token", base,
		waitText(`label[for="token"]`, "Bearer token"))
	shot("login")

	// The login URL: the overview, with the token out of the address bar.
	load(t, tab, "log in with the printed URL", admin,
		waitText(`[data-testid="nodes-ready"]`, "1 / 1 Ready"),
		waitText(`dd[data-phase="Running"]`, ""))
	// The counts by phase are the API's.
	eventually(t, 20*time.Second, "the overview's count of Running pods", func() (bool, string) {
		pods, err := the.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		if err != nil {
			return false, err.Error()
		}
		shown := strings.TrimSpace(textOf(t, tab, `dd[data-phase="Running"]`))
		return shown == fmt.Sprint(len(pods.Items)), fmt.Sprintf("shown %q, the API lists %d", shown, len(pods.Items))
	})
	address, err := chromedp.Run(tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(address, "token=") {
		t.Errorf("the token stayed in the address bar: %s", address)
	}
	shot("overview")

	browse(t, tab, "nodes with usage", chromedp.Navigate(base+"#/core/v1/nodes"),
		waitText(fmt.Sprintf(`tr[data-name=%q]`, the.nodeName), "Ready"))
	shot("nodes")
	browse(t, tab, "a node's usage charts", chromedp.Navigate(base+"#/core/v1/nodes/_/"+the.nodeName),
		waitText(`section[aria-label="Usage over the last hour"]`, "Memory"))
	shot("node")

	// The usage history behind the charts: authenticated, and authorized
	// as a list of metrics.k8s.io's nodes or pods.
	usage := fmt.Sprintf("https://127.0.0.1:%d/dashboard/api/v1/usage/", the.port)
	if code, _, err := anonymousGet(t, usage+"nodes"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("anonymous GET of the usage history: %d %v, want 401", code, err)
	}
	if code, body := bearerGet(t, usage+"nodes?name="+the.nodeName, tokenOf(t, admin)); code != http.StatusOK || !strings.Contains(body, `"times"`) {
		t.Errorf("the admin's GET of the node's usage history: %d %s", code, body)
	}

	// A Deployment scaled with kubectl shows on the page through the watch.
	row := fmt.Sprintf(`table[data-resource="deployments"] tr[data-name="web"][data-namespace=%q]`, ns)
	browse(t, tab, "the Deployment in the list", chromedp.Navigate(base+"#/apps/v1/deployments"), waitText(row, "1/1"))
	mustKubectl(t, "scale", "-n", ns, "deployment/web", "--replicas=3")
	began := time.Now()
	browse(t, tab, "the scaled Deployment in the list", waitText(row, "/3"))
	t.Logf("kubectl scale shown on the page %s after kubectl returned", time.Since(began).Round(time.Millisecond))
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the scaled Deployment took %s to show; the page watches, so it should take well under a second", d)
	}
	shot("deployments")
	// The steps below count the scaled pods: they start once those are up.
	mustKubectl(t, "rollout", "status", "-n", ns, "deployment/web", "--timeout=90s")

	browse(t, tab, "pods", chromedp.Navigate(base+"#/core/v1/pods"),
		waitText(fmt.Sprintf(`tr[data-name=%q]`, podName), "Running"))
	shot("pods")

	// Logs stream: later lines arrive without a reload.
	podURL := fmt.Sprintf("%s#/core/v1/pods/%s/%s", base, ns, podName)
	browse(t, tab, "the pod's logs", chromedp.Navigate(podURL+"?tab=logs"), waitText(`[data-testid="logs"]`, "tick 3"))
	first := textOf(t, tab, `[data-testid="logs"]`)
	n := strings.Count(first, "tick ")
	eventually(t, 10*time.Second, "more log lines streamed", func() (bool, string) {
		now := textOf(t, tab, `[data-testid="logs"]`)
		return strings.Count(now, "tick ") > n+5, fmt.Sprintf("%d lines, had %d", strings.Count(now, "tick "), n)
	})
	shot("logs")

	browse(t, tab, "a terminal in the pod", chromedp.Navigate(podURL+"?tab=exec"),
		waitText(`section[aria-label="Terminal"] [role="status"]`, "connected"),
		typeInto(`section[aria-label="Terminal"] input`, "echo answer-$((6*7))"),
		click(`section[aria-label="Terminal"] button[type="submit"]`),
		waitText(`[data-testid="terminal"]`, "answer-42"))
	shot("terminal")

	// An invalid edit: the API's error at its field, nothing changed.
	depURL := fmt.Sprintf("%s#/apps/v1/deployments/%s/web", base, ns)
	browse(t, tab, "the YAML editor", chromedp.Navigate(depURL+"?tab=yaml"), waitText(`.editor-box .actions`, "Dry run"))
	line, err := chromedp.Run(tab, chromedp.Evaluate[int](`(() => {
		const t = document.querySelector('textarea[aria-label="Object YAML"]');
		t.value = t.value.replace(/^  replicas: 3$/m, '  replicas: -1');
		t.dispatchEvent(new Event('input', {bubbles: true}));
		return t.value.split('\n').findIndex(l => l === '  replicas: -1') + 1;
	})()`))
	if err != nil || line == 0 {
		t.Fatalf("the YAML shown has no line '  replicas: 3' (%v)", err)
	}
	browse(t, tab, "an invalid YAML edit",
		click(`.editor-box .actions button:nth-child(2)`), // Save
		waitText(`.field-errors li[data-field="spec.replicas"]`, "must be greater than or equal to 0"))
	shownLine, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('.field-errors li[data-field="spec.replicas"]').dataset.line`))
	if err != nil {
		t.Fatal(err)
	}
	gutter := textOf(t, tab, `.gutter li.bad`)
	if shownLine != fmt.Sprint(line) || strings.TrimSpace(gutter) != fmt.Sprint(line) {
		t.Errorf("error shown at line %s (gutter %q), want line %d where spec.replicas is", shownLine, gutter, line)
	}
	shot("yaml-error")
	if d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("after the refused edit: %v, replicas %v; want 3", err, d.Spec.Replicas)
	}

	// A save whose connection fails (as Chrome fails every open request
	// when the host's network changes): the editor says so instead of
	// dropping the error. The page's fetch fails for this one request.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => {
		const t = document.querySelector('textarea[aria-label="Object YAML"]');
		t.value = t.value.replace(/^  replicas: -1$/m, '  replicas: 4');
		t.dispatchEvent(new Event('input', {bubbles: true}));
		const real = window.fetch;
		window.fetch = (url, opts) => {
			if (opts && opts.method === 'PUT' && !String(url).includes('dryRun=All')) {
				window.fetch = real;
				return Promise.reject(new TypeError('Failed to fetch'));
			}
			return real(url, opts);
		};
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	browse(t, tab, "a YAML save whose connection fails",
		click(`.editor-box .actions button:nth-child(2)`), // Save
		waitText(`.field-errors`, "No answer from the API server (Failed to fetch): the change may or may not have been saved"))
	if d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("after the failed save: %v, replicas %v; want 3", err, d.Spec.Replicas)
	}

	// A Service with its endpoints, live.
	if _, err := the.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	browse(t, tab, "a Service's endpoints", chromedp.Navigate(fmt.Sprintf("%s#/core/v1/services/%s/web", base, ns)),
		waitText(`[data-testid="endpoints"] caption`, "3 ready of 3"))
	shot("service")

	// A read-only user: sees the Deployment, is refused a scale with the
	// API's own 403 message.
	if _, err := the.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, "create", "rolebinding", "viewer", "-n", ns, "--clusterrole=view", "--serviceaccount="+ns+":viewer")
	viewer := loginURL(t, "--service-account", ns+"/viewer")
	want := fmt.Sprintf(`deployments.apps "web" is forbidden: User "system:serviceaccount:%s:viewer" cannot patch resource "deployments/scale" in API group "apps" in the namespace %q`, ns, ns)
	browse(t, tab, "a read-only user scales",
		chromedp.Navigate(viewer),
		waitText(`header .user`, ns+":viewer"),
		chromedp.Navigate(depURL),
		waitText(`[data-testid="rollout"]`, "of 3 desired"),
		typeInto(`input[name="replicas"]`, "1"),
		click(`form.inline button[type="submit"]`), // Scale
		waitText(`.actions [role="alert"]`, want))
	shot("forbidden")
	code, body := bearerGet(t, usage+"nodes", tokenOf(t, viewer))
	if want := fmt.Sprintf(`nodes.metrics.k8s.io is forbidden: User \"system:serviceaccount:%s:viewer\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope`, ns); code != http.StatusForbidden || !strings.Contains(body, want) {
		t.Errorf("the viewer's GET of the nodes' usage history: %d %s\nwant 403 with %s", code, body, want)
	}
	if code, body := bearerGet(t, usage+"pods?namespace="+ns, tokenOf(t, viewer)); code != http.StatusOK {
		t.Errorf("the viewer's GET of its namespace's pods' usage history: %d %s", code, body)
	}
	phases := fmt.Sprintf("https://127.0.0.1:%d/dashboard/api/v1/pods/phases", the.port)
	if code, body := bearerGet(t, phases, tokenOf(t, viewer)); code != http.StatusForbidden {
		t.Errorf("the viewer's count of every namespace's pods: %d %s, want 403", code, body)
	}
	if code, body := bearerGet(t, phases+"?namespace="+ns, tokenOf(t, viewer)); code != http.StatusOK || !strings.Contains(body, `"total":3`) {
		t.Errorf("the viewer's count of its namespace's pods: %d %s, want its 3", code, body)
	}
	if code, _, err := anonymousGet(t, phases); err != nil || code != http.StatusUnauthorized {
		t.Errorf("an anonymous count of pods: %d %v, want 401", code, err)
	}
	if d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("after the refused scale: %v, replicas %v; want 3", err, d.Spec.Replicas)
	}
}

// caClient is an HTTPS client trusting the cluster's CA, without
// credentials.
func caClient(t *testing.T) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(the.dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// anonymousGet GETs url without credentials, trusting the cluster's CA.
func anonymousGet(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := caClient(t).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// tokenOf is the token in a login URL.
func tokenOf(t *testing.T, loginURL string) string {
	t.Helper()
	_, tok, ok := strings.Cut(loginURL, "#token=")
	if !ok {
		t.Fatalf("no token in %s", loginURL)
	}
	return tok
}

// bearerGet GETs url with a bearer token, trusting the cluster's CA.
func bearerGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := caClient(t).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// loginURL runs `skiff dashboard` on the package's server.
func loginURL(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(the.bin, append([]string{"dashboard", "--data-dir", the.dataDir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skiff dashboard %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

type browser struct {
	ctx       context.Context
	artifacts string
}

// chromium starts a headless chromium for the test, or skips it when the
// machine has none (scripts/deps.sh test installs Debian's). The browser
// runs in a network namespace of its own, where the test forwards each of
// ports on 127.0.0.1 to the same port on the host's loopback: chromium drops
// every request in flight when it sees the host's network change
// (ERR_NETWORK_CHANGED, with no switch to turn that off), and each pod the
// tests beside it start adds a veth to the host. It speaks DevTools over a
// pipe, so it needs no other address.
func chromium(t *testing.T, ports ...int) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium on this machine (scripts/deps.sh test installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root
		// The server's certificate is signed by the cluster's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags: syscall.CLONE_NEWNET,
				Pdeathsig:  syscall.SIGKILL, // as chromedp's own default
			}
		}),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	proc := chromedp.FromContext(ctx).Browser.Process()
	if proc == nil {
		t.Fatal("chromium started without a process")
	}
	for _, port := range ports {
		forwardInto(t, proc.Pid, port)
	}
	dir := os.Getenv("SKIFF_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "bin", "artifacts")
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx, artifacts: dir}
}

// forwardInto listens on 127.0.0.1:port in the network namespace of process
// pid (bringing its loopback up) and copies each connection to and from
// 127.0.0.1:port on the host, until the test ends.
func forwardInto(t *testing.T, pid, port int) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var ln net.Listener
	err := e2eutil.InNetns(fmt.Sprintf("/proc/%d/ns/net", pid), func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("forward %s into chromium's network namespace: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(in, out); in.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
}

// churnHostNetwork adds an address to a veth on the host and takes it away
// again, every 200 ms until the test ends, as pods' veths coming and
// going do: the browser must not see it.
func churnHostNetwork(t *testing.T) {
	t.Helper()
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "skiff-churn0"}, PeerName: "skiff-churn1"}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatalf("add a veth to churn: %v", err)
	}
	addr, err := netlink.ParseAddr("198.51.100.77/32")
	if err != nil {
		t.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-stopped
		if err := netlink.LinkDel(link); err != nil {
			t.Errorf("remove the veth: %v", err)
		}
	})
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(stopped)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for up := true; ; up = !up {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if up {
				netlink.AddrAdd(link, addr)
			} else {
				netlink.AddrDel(link, addr)
			}
		}
	}()
}

// tab opens a browser tab; its console and exceptions go to the test log.
func (b *browser) tab(t *testing.T) (context.Context, context.CancelFunc) {
	// The page's console and uncaught exceptions go to the test's log.
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			t.Logf("browser console %s: %s", ev.Type, strings.Join(args, " "))
		case *cdplog.EventEntryAdded:
			t.Logf("browser log %s: %s %s", ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Logf("browser exception at %s:%d: %s", d.URL, d.LineNumber, msg)
		}
	}))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	return ctx, cancel
}

// screenshots returns a function saving the tab's page as NAME.png.
func (b *browser) screenshots(t *testing.T, tab context.Context) func(name string) {
	return func(name string) {
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		file := filepath.Join(b.artifacts, name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// load opens url in the tab and runs actions, bounded by 30 s. A URL that
// differs from the tab's only by its fragment (the login URL's #token=)
// would navigate within the document: it leaves the page first.
func load(t *testing.T, tab context.Context, what, url string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	browse(t, tab, what, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate("about:blank"), chromedp.Navigate(url)}, actions...)...)
}

// browse runs browser actions with a bound of 30 s, failing the test with
// what it was doing.
func browse(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\nthe page says: %.2000s", what, err, body)
	}
}

// textOf is the text of the first element matching sel ("" without one).
func textOf(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent`, sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// typeInto sets an input's value as typing does, firing its input event.
func typeInto(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			const e = document.querySelector(%q);
			if (!e) throw new Error('no element ' + %q);
			e.focus(); e.value = %q;
			e.dispatchEvent(new Event('input', {bubbles: true}));
			return true;
		})()`, sel, sel, value))(ctx, t)
		return err
	})
}

// click clicks the first element matching sel.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			const e = document.querySelector(%q);
			if (!e) throw new Error('no element ' + %q);
			e.click();
			return true;
		})()`, sel, sel))(ctx, t)
		return err
	})
}

// waitText waits until the first element matching sel holds text.
func waitText(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			ok, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, text))(ctx, t)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no %q holding %q: %w", sel, text, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}
