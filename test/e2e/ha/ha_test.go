// Package ha tests highly available servers: three `skiff server`s, the
// first in the host's network namespace (--cluster-init), the others each in
// a namespace of its own joined with --server and the server token, and one
// node whose agent was told only the first server's address
// (scripts/netns-cluster.sh with SERVERS=3), run from a lone copy of the
// binary (and the containerd programs) with the test image imported. The
// leading server is killed with -9 under write load; every acknowledged
// write must survive, another server must lead, and the node must keep its
// pods and fail over.
package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"github.com/skiffdev/skiff/internal/freeport"
	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/internal/secretsencrypt"
)

const (
	subnet  = "172.31.250"
	servers = 3
)

var (
	skiffBin   string
	clusterDir string
	port       int
	// admin is the admin kubeconfig's REST config (any server's address
	// may replace its host: every server's certificate names its address).
	admin *rest.Config
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("skip: network namespaces need root")
		return 0
	}
	for _, tool := range []string{"ip", "nsenter", "unshare", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("skip: %s not installed\n", tool)
			return 0
		}
	}
	if skiffBin = os.Getenv("SKIFF_BIN"); skiffBin == "" {
		fmt.Println("SKIFF_BIN is not set: build bin/skiff with `make build` and set SKIFF_BIN")
		return 1
	}
	dir, err := os.MkdirTemp("", "skiff-netns-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	wd, _ := os.Getwd()
	script := filepath.Join(wd, "..", "..", "..", "scripts", "netns-cluster.sh")
	env := append(os.Environ(), "SKIFF_BIN="+skiffBin, fmt.Sprintf("SERVERS=%d", servers))
	down := func() {
		cmd := exec.Command(script, "down", dir)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("netns-cluster down: %v\n%s\n", err, out)
		}
		os.RemoveAll(dir)
	}
	down() // a run killed earlier may have left namespaces behind
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Println(err)
		return 1
	}
	if port, err = freeport.Pick(); err != nil {
		fmt.Println(err)
		return 1
	}
	clusterDir = dir
	// The node runs a lone copy of the binary, with only the containerd
	// programs beside it and without the images directory: the pause
	// image comes from the binary itself, the test image is imported with
	// `skiff image import`.
	lone := filepath.Join(dir, "lone", "skiff")
	for name, from := range map[string]string{
		"skiff":                   skiffBin,
		"containerd":              filepath.Join(filepath.Dir(skiffBin), "containerd"),
		"containerd-shim-runc-v2": filepath.Join(filepath.Dir(skiffBin), "containerd-shim-runc-v2"),
		"ctr":                     filepath.Join(filepath.Dir(skiffBin), "ctr"),
	} {
		if err := copyFile(from, filepath.Join(dir, "lone", name)); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	up := exec.Command(script, "up", dir, "1", strconv.Itoa(port))
	up.Env = append(env, "AGENT_BIN="+lone)
	if out, err := up.CombinedOutput(); err != nil {
		fmt.Printf("netns-cluster up: %v\n%s\n", err, out)
		for _, log := range []string{"server.log", "s2.log", "s3.log", "n1.log"} {
			tail(log)
		}
		down()
		return 1
	}
	defer down()
	if admin, err = clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "server", "kubeconfig.yaml")); err != nil {
		fmt.Println(err)
		return 1
	}
	testImage := filepath.Join(wd, "..", "..", "..", "images", "out", "testhost.tar")
	if out, err := exec.Command(lone, "image", "import", testImage, "--data-dir", filepath.Join(dir, "n1")).CombinedOutput(); err != nil {
		fmt.Printf("skiff image import %s: %v\n%s\n", testImage, err, out)
		return 1
	}
	code := m.Run()
	if code != 0 {
		for _, log := range []string{"server.log", "s2.log", "s3.log", "n1.log"} {
			tail(log)
		}
	}
	return code
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

func tail(log string) {
	if data, err := os.ReadFile(filepath.Join(clusterDir, log)); err == nil {
		lines := strings.Split(string(data), "\n")
		fmt.Printf("--- tail of %s\n%s\n", log, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// server is server i (1…3) of the cluster as the script started it.
type server struct{ i int }

func (s server) addr() string { return fmt.Sprintf("%s.%d", subnet, s.i) }

// name is the file stem of its data dir, log and pid file.
func (s server) name() string {
	if s.i == 1 {
		return "server"
	}
	return fmt.Sprintf("s%d", s.i)
}

func (s server) dataDir() string { return filepath.Join(clusterDir, s.name()) }

// hostname is the host name its components put in their Lease identities.
func (s server) hostname() string {
	if s.i == 1 {
		h, _ := os.Hostname()
		return h
	}
	return fmt.Sprintf("skiff-s%d", s.i)
}

func (s server) pid(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clusterDir, s.name()+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// client talks to this server's API server alone.
func (s server) client(t *testing.T) kubernetes.Interface {
	t.Helper()
	rc := rest.CopyConfig(admin)
	rc.Host = fmt.Sprintf("https://%s:%d", s.addr(), port)
	rc.Timeout = 5 * time.Second
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// skiff runs a skiff command in this server's network namespace (a
// server's etcd serves its own tools on its loopback).
func (s server) skiff(args ...string) (string, error) {
	argv := append([]string{skiffBin}, args...)
	if s.i != 1 {
		argv = append([]string{"nsenter", "--net=/var/run/netns/skiff-s" + strconv.Itoa(s.i)}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

func all() []server { return []server{{1}, {2}, {3}} }

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// startedMembers lists the started members of the etcd cluster as server
// s sees them (`skiff etcd member list`), by name.
func startedMembers(t *testing.T, s server) []string {
	t.Helper()
	out, err := s.skiff("etcd", "member", "list", "--data-dir", s.dataDir())
	if err != nil {
		t.Fatalf("skiff etcd member list on %s: %v\n%s", s.name(), err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "started" {
			names = append(names, f[1])
		}
	}
	slices.Sort(names)
	return names
}

func memberName(t *testing.T, s server) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dataDir(), "etcd-name"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// leaseHolder is the server (by host name) holding a kube-system Lease.
func leaseHolder(ctx context.Context, c kubernetes.Interface, lease string) string {
	l, err := c.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	host, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return host
}

// writer creates ConfigMaps one after the other through the servers in
// turn, moving to the next server when one fails, and records which it
// was told were created.
type writer struct {
	mu    sync.Mutex
	acked []string
	at    []time.Time
}

func (w *writer) run(ctx context.Context, clients []kubernetes.Interface, ns string) {
	cur := 0
	for n := 0; ctx.Err() == nil; {
		name := fmt.Sprintf("w-%05d", n)
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := clients[cur].CoreV1().ConfigMaps(ns).Create(wctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Data:       map[string]string{"n": strconv.Itoa(n)},
		}, metav1.CreateOptions{})
		cancel()
		// AlreadyExists: an earlier attempt whose answer was lost.
		if err == nil || apierrors.IsAlreadyExists(err) {
			w.mu.Lock()
			w.acked, w.at = append(w.acked, name), append(w.at, time.Now())
			w.mu.Unlock()
			n++
			continue
		}
		cur = (cur + 1) % len(clients)
		time.Sleep(50 * time.Millisecond)
	}
}

// firstAfter is the time of the first acknowledged write after t.
func (w *writer) firstAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.at {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

func TestThreeServersSurviveLosingTheLeader(t *testing.T) {
	ctx := context.Background()
	s1, s2 := server{1}, server{2}
	// One etcd cluster of three started members, three serving API servers.
	if got := startedMembers(t, s1); len(got) != servers {
		t.Fatalf("etcd members: %v, want %d started", got, servers)
	}
	for _, s := range all() {
		if _, err := s.client(t).Discovery().ServerVersion(); err != nil {
			t.Fatalf("API server of %s: %v", s.name(), err)
		}
	}
	c2 := s2.client(t)
	eventually(t, time.Minute, "the kubernetes endpoints to list the three servers", func() bool {
		list, err := c2.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
		if err != nil {
			return false
		}
		n := 0
		for _, s := range list.Items {
			n += len(s.Endpoints)
		}
		return n == servers
	})

	ns := "ha"
	if _, err := c2.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := runDeployment(t, c2, ns, "before", 2)

	leader := leaseHolder(ctx, c2, "kube-controller-manager")
	var victim server
	for _, s := range all() {
		if s.hostname() == leader {
			victim = s
		}
	}
	if victim.i == 0 {
		t.Fatalf("the controller manager's Lease is held by %q, not one of the servers", leader)
	}
	var survivors []server
	for _, s := range all() {
		if s != victim {
			survivors = append(survivors, s)
		}
	}
	sc := survivors[0].client(t)
	t.Logf("kube-controller-manager leads on %s; killing it with -9 under write load", victim.name())

	// Writes go through the victim first, then the others.
	var w writer
	clients := []kubernetes.Interface{victim.client(t)}
	for _, s := range survivors {
		clients = append(clients, s.client(t))
	}
	wctx, stopWriting := context.WithCancel(ctx)
	writing := make(chan struct{})
	go func() { defer close(writing); w.run(wctx, clients, ns) }()
	defer func() { stopWriting(); <-writing }()
	eventually(t, 30*time.Second, "writes to be acknowledged", func() bool { _, ok := w.firstAfter(time.Time{}); return ok })
	time.Sleep(2 * time.Second)

	if err := syscall.Kill(victim.pid(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// A Deployment made now needs a leading controller manager for its
	// ReplicaSet: the next leader-elected controller action.
	// (Retried: writes wait for etcd to elect a leader if it was the
	// victim's member.)
	go func() {
		for ctx.Err() == nil {
			_, err := sc.AppsV1().Deployments(ns).Create(ctx, deployment("after", 1), metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// Each time counts from the kill.
	eventually(t, 30*time.Second, "a write acknowledged after the kill", func() bool { _, ok := w.firstAfter(killed); return ok })
	written, _ := w.firstAfter(killed)
	write := written.Sub(killed)
	eventually(t, 45*time.Second, "another server to lead the controller manager", func() bool {
		h := leaseHolder(ctx, sc, "kube-controller-manager")
		return h != "" && h != victim.hostname()
	})
	lead := time.Since(killed)
	eventually(t, 45*time.Second, "the ReplicaSet of a Deployment made after the kill", func() bool {
		rs, err := sc.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=after"})
		return err == nil && len(rs.Items) > 0
	})
	act := time.Since(killed)
	t.Logf("after the kill: next write %s, controller manager leads elsewhere %s, its first action %s", write.Round(time.Millisecond), lead.Round(time.Millisecond), act.Round(time.Millisecond))
	if lead > 15*time.Second {
		t.Errorf("the controller manager's Lease moved %s after the kill, want within 15 s", lead)
	}
	time.Sleep(3 * time.Second)
	stopWriting()
	<-writing

	// Every acknowledged write is there.
	list, err := sc.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	var lost []string
	for _, name := range w.acked {
		if !have[name] {
			lost = append(lost, name)
		}
	}
	t.Logf("%d writes acknowledged, %d lost", len(w.acked), len(lost))
	if len(lost) > 0 {
		t.Errorf("acknowledged writes lost: %v", lost)
	}

	// The node kept its pods and reports through a surviving server.
	eventually(t, time.Minute, "the node's Lease to be renewed after the kill", func() bool {
		l, err := sc.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "skiff-n1", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(killed.Add(time.Second))
	})
	for _, p := range pods {
		got, err := sc.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s after the kill: %v", p.Name, err)
		}
		if got.UID != p.UID || got.Status.Phase != corev1.PodRunning || restarts(got) != restarts(&p) {
			t.Errorf("pod %s after the kill: uid %s phase %s restarts %d, was uid %s restarts %d", p.Name, got.UID, got.Status.Phase, restarts(got), p.UID, restarts(&p))
		}
	}
	runDeployment(t, sc, ns, "later", 1)
	// The dead server's cluster DNS endpoint is pruned once its API server
	// has left the kubernetes endpoints.
	eventually(t, time.Minute, "the dead server's kube-dns endpoint to go", func() bool {
		addrs, err := dnsAddresses(ctx, sc)
		return err == nil && !slices.Contains(addrs, victim.addr()) && len(addrs) == servers-1
	})

	// The dead server's member is removed, then the server joins again
	// with its etcd data wiped, through a survivor.
	name := memberName(t, victim)
	if out, err := survivors[0].skiff("etcd", "member", "remove", name, "--data-dir", survivors[0].dataDir()); err != nil {
		t.Fatalf("skiff etcd member remove %s: %v\n%s", name, err, out)
	}
	if got := startedMembers(t, survivors[1]); len(got) != servers-1 || slices.Contains(got, name) {
		t.Fatalf("etcd members after removing %s: %v", name, got)
	}
	if err := os.RemoveAll(filepath.Join(victim.dataDir(), "etcd")); err != nil {
		t.Fatal(err)
	}
	restart(t, victim, "--server", fmt.Sprintf("https://%s:%d", survivors[0].addr(), port), "--token-file", filepath.Join(victim.dataDir(), "token"))
	if got := startedMembers(t, survivors[1]); len(got) != servers || !slices.Contains(got, name) {
		t.Fatalf("etcd members after %s joined again: %v", victim.name(), got)
	}
	vc := victim.client(t)
	if _, err := vc.CoreV1().ConfigMaps(ns).Get(ctx, w.acked[len(w.acked)-1], metav1.GetOptions{}); err != nil {
		t.Errorf("the rejoined server does not read the last write: %v", err)
	}
	eventually(t, time.Minute, "the rejoined server's kube-dns endpoint", func() bool {
		addrs, err := dnsAddresses(ctx, vc)
		return err == nil && slices.Contains(addrs, victim.addr())
	})
}

// dnsAddresses are the addresses of the kube-dns Service's endpoints, one
// per server.
func dnsAddresses(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	list, err := c.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
	}
	return addrs, nil
}

// restart starts server s again with the command line the script used plus
// extra flags, and waits until it is ready.
func restart(t *testing.T, s server, extra ...string) {
	t.Helper()
	logPath := filepath.Join(clusterDir, s.name()+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	before, _ := os.ReadFile(logPath)
	argv := []string{skiffBin, "server", "--data-dir", s.dataDir(), "--https-listen-port", strconv.Itoa(port),
		"--advertise-address", s.addr(), "--tls-san", s.addr(), "--disable-agent"}
	argv = append(argv, extra...)
	if s.i != 1 {
		argv = append([]string{"nsenter", "--net=/var/run/netns/skiff-s" + strconv.Itoa(s.i), "unshare", "--uts",
			"sh", "-c", `hostname "$0" && exec "$@"`, s.hostname()}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Not in the test's process group: `netns-cluster.sh down` stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := os.WriteFile(filepath.Join(clusterDir, s.name()+".pid"), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, s.name()+" to be ready again", func() bool {
		select {
		case <-exited:
			t.Fatalf("%s exited", s.name())
		default:
		}
		data, _ := os.ReadFile(logPath)
		return strings.Contains(string(data[len(before):]), "skiff server is ready")
	})
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// Imported into the node, which has no registry or mirror
				// for it.
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "localhost/skiff/testhost:latest", Args: []string{"netexec"},
					ImagePullPolicy: corev1.PullNever,
				}}},
			},
		},
	}
}

// runDeployment creates a Deployment and waits for its pods to run.
func runDeployment(t *testing.T, c kubernetes.Interface, ns, name string, n int32) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, deployment(name, n), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	eventually(t, 3*time.Minute, fmt.Sprintf("%d pods of %s to run", n, name), func() bool {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				pods = append(pods, p)
			}
		}
		return len(pods) == int(n)
	})
	return pods
}

// TestJoinRefusals: a server that joins with a token that is not the
// cluster's, or a token that joins agents only, is refused with a message
// saying so, before it changes anything.
func TestJoinRefusals(t *testing.T) {
	token, err := os.ReadFile(filepath.Join(server{1}.dataDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	hash, _, _ := strings.Cut(strings.TrimSpace(string(token)), "::")
	agentToken, err := server{2}.skiff("token", "create", "--data-dir", server{2}.dataDir())
	if err != nil {
		t.Fatalf("skiff token create: %v\n%s", err, agentToken)
	}
	for _, c := range []struct {
		name, token, want string
		args              []string
	}{
		{name: "wrong secret", token: hash + "::abcdef.0123456789abcdef", want: "refuses the token"},
		{name: "wrong CA", token: "K10" + strings.Repeat("0", 64) + "::abcdef.0123456789abcdef", want: "did not present the CA"},
		{name: "agent token", token: strings.TrimSpace(agentToken), want: "may join agents only"},
		{name: "secrets in plain text", token: strings.TrimSpace(string(token)), args: []string{"--secrets-encryption=false"},
			want: "--secrets-encryption=false differs from the cluster's (true)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--disable-agent",
				"--https-listen-port", strconv.Itoa(port + 1),
				"--server", fmt.Sprintf("https://%s:%d", server{2}.addr(), port), "--token-file", tokenFile}, c.args...)
			out, err := exec.CommandContext(ctx, skiffBin, args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !strings.Contains(string(out), c.want) {
				t.Fatalf("join with %s: %v, want a refusal saying %q:\n%s", c.name, err, c.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "tls", "ca.crt")); err == nil {
				t.Error("a refused server wrote a CA")
			}
		})
	}
}

// TestKeyRotationReachesEveryServer: `skiff secrets-encrypt rotate-keys` on
// one server hands each step to the others, so that every server ends with
// the one new key and reads every Secret, old and new, through any server.
func TestKeyRotationReachesEveryServer(t *testing.T) {
	ctx := context.Background()
	keyOf := func(s server) []string {
		st, _, err := secretsencrypt.Load(filepath.Join(s.dataDir(), "cred", "encryption-config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range st.Keys {
			names = append(names, k.Name)
		}
		return names
	}
	s1, s2, s3 := server{1}, server{2}, server{3}
	before := keyOf(s1)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "before-rotation"}, StringData: map[string]string{"v": "old"}}
	if _, err := s1.client(t).CoreV1().Secrets(metav1.NamespaceDefault).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := s2.skiff("secrets-encrypt", "rotate-keys", "--data-dir", s2.dataDir())
	if err != nil || !strings.Contains(out, "all 3 API servers have loaded") || !strings.Contains(out, "rotation done") {
		t.Fatalf("rotate-keys on %s: %v\n%s", s2.name(), err, out)
	}
	for _, s := range all() {
		eventually(t, 30*time.Second, s.name()+" to hold the one new key", func() bool {
			got := keyOf(s)
			return len(got) == 1 && !slices.Contains(before, got[0]) && slices.Equal(got, keyOf(s2))
		})
	}
	after := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "after-rotation"}, StringData: map[string]string{"v": "new"}}
	if _, err := s3.client(t).CoreV1().Secrets(metav1.NamespaceDefault).Create(ctx, after, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range all() {
		for name, want := range map[string]string{"before-rotation": "old", "after-rotation": "new"} {
			got, err := s.client(t).CoreV1().Secrets(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{})
			if err != nil || string(got.Data["v"]) != want {
				t.Errorf("Secret %s through %s: %v, %v", name, s.name(), got, err)
			}
		}
	}
}

// TestCARotationReachesEveryServer: `skiff certificate rotate-ca` on the
// first server, stopped; started again, it publishes its new CAs, which the
// others take within seconds; restarted one at a time, they serve
// certificates of the new CA, their etcd members rejoin with the new etcd
// CA, and what was made before the rotation still works: the node (which
// trusts only the old CA), the old admin kubeconfig, and a join token that
// names the old CA.
func TestCARotationReachesEveryServer(t *testing.T) {
	ctx := context.Background()
	s1 := server{1}
	oldToken, err := os.ReadFile(filepath.Join(s1.dataDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	oldCA := readFile(t, filepath.Join(s1.dataDir(), "tls", "ca.crt"))
	oldEtcdCA := readFile(t, filepath.Join(s1.dataDir(), "tls", "etcd", "ca.crt"))
	stop(t, s1)
	if out, err := s1.skiff("certificate", "rotate-ca", "--data-dir", s1.dataDir()); err != nil || !strings.Contains(out, "new CA written") {
		t.Fatalf("rotate-ca: %v\n%s", err, out)
	}
	restart(t, s1)
	newCA := readFile(t, filepath.Join(s1.dataDir(), "tls", "ca.crt"))
	newEtcdCA := readFile(t, filepath.Join(s1.dataDir(), "tls", "etcd", "ca.crt"))
	if !pki.Succeeds(newCA, oldCA) || !pki.Succeeds(newEtcdCA, oldEtcdCA) {
		t.Fatal("rotate-ca did not make new CAs that keep the old ones")
	}
	for _, s := range all()[1:] {
		eventually(t, 30*time.Second, s.name()+" to take the new CAs", func() bool {
			return bytes.Equal(readFile(t, filepath.Join(s.dataDir(), "tls", "ca.crt")), newCA) &&
				bytes.Equal(readFile(t, filepath.Join(s.dataDir(), "tls", "etcd", "ca.crt")), newEtcdCA)
		})
		stop(t, s)
		restart(t, s)
	}
	ca, err := pki.LoadCA(filepath.Join(s1.dataDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for _, s := range all() {
		certs, err := certutil.CertsFromFile(filepath.Join(s.dataDir(), "tls", "serving.crt"))
		if err != nil || !ca.Signed(certs[0]) {
			t.Errorf("%s serves a certificate the new CA did not sign (err %v)", s.name(), err)
		}
		// admin holds the admin kubeconfig of before the rotation: the old
		// CA alone, and a client certificate of the old CA.
		if _, err := s.client(t).CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("the admin kubeconfig of before the rotation through %s: %v", s.name(), err)
		}
		for name, token := range map[string][]byte{"old": oldToken, "new": readFile(t, filepath.Join(s.dataDir(), "token"))} {
			tok, err := jointoken.Parse(string(token))
			if err != nil {
				t.Fatal(err)
			}
			got, err := jointoken.DiscoverCA(fmt.Sprintf("https://%s:%d", s.addr(), port), tok)
			if err != nil || !bytes.Equal(got, newCA) {
				t.Errorf("a join token naming the %s CA at %s: %v (CA bundle %d bytes, want %d)", name, s.name(), err, len(got), len(newCA))
			}
		}
	}
	newAdmin, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s1.dataDir(), "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := kubernetes.NewForConfig(newAdmin); err != nil {
		t.Fatal(err)
	} else if _, err := c.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("the new admin kubeconfig: %v", err)
	}
	if got := startedMembers(t, s1); len(got) != servers {
		t.Errorf("etcd members after the rotation: %v", got)
	}
	// The node, which trusts only the old CA, still reports, runs new
	// pods, and accepts the API servers' new kubelet-client certificates.
	eventually(t, time.Minute, "the node's Lease to be renewed after the restarts", func() bool {
		l, err := s1.client(t).CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "skiff-n1", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restarted)
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ca-rotation"}}
	if _, err := s1.client(t).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := runDeployment(t, s1.client(t), ns.Name, "after-ca-rotation", 1)[0]
	for _, s := range all() {
		if _, err := s.client(t).CoreV1().Pods(ns.Name).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx); err != nil {
			t.Errorf("pod logs through %s (its API server to the kubelet): %v", s.name(), err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stop ends server s with SIGTERM and waits until it has exited.
func stop(t *testing.T, s server) {
	t.Helper()
	pid := s.pid(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, s.name()+" to stop", func() bool { return syscall.Kill(pid, 0) != nil })
}

// TestClusterResetKeepsTheDataOfTheLastServer: with every server stopped,
// `skiff server --cluster-reset` makes the first server the only member of
// its etcd cluster with every object kept; the others, their etcd data
// deleted, join it again as new members.
func TestClusterResetKeepsTheDataOfTheLastServer(t *testing.T) {
	ctx := context.Background()
	s1 := server{1}
	marker := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-reset"}}
	if _, err := s1.client(t).CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range all() {
		stop(t, s)
	}
	if out, err := s1.skiff("server", "--data-dir", s1.dataDir(), "--cluster-reset"); err != nil || !strings.Contains(out, "membership reset") {
		t.Fatalf("skiff server --cluster-reset: %v\n%s", err, out)
	}
	restart(t, s1)
	if got := startedMembers(t, s1); len(got) != 1 || got[0] != memberName(t, s1) {
		t.Fatalf("etcd members after the reset: %v, want %s alone", got, memberName(t, s1))
	}
	if _, err := s1.client(t).CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, marker.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	for _, s := range all()[1:] {
		if err := os.RemoveAll(filepath.Join(s.dataDir(), "etcd")); err != nil {
			t.Fatal(err)
		}
		restart(t, s, "--server", fmt.Sprintf("https://%s:%d", s1.addr(), port), "--token-file", filepath.Join(s.dataDir(), "token"))
	}
	if got := startedMembers(t, s1); len(got) != servers {
		t.Fatalf("etcd members after the others joined again: %v", got)
	}
	s3 := server{3}
	if _, err := s3.client(t).CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, marker.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("a server joined again does not read the data: %v", err)
	}
}
