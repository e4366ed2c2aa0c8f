package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/freeport"
)

// readyLine is what `skiff server` logs once it serves and bootstrap is done.
const readyLine = "skiff server is ready; the admin kubeconfig is at "

// cluster is the package's one `skiff server` with its node agent.
type cluster struct {
	bin        string
	dir        string // everything the server writes, removed at the end
	dataDir    string
	kubeconfig string
	nodeName   string
	port       int
	kubelet    int
	starts     int

	// firstStart is the first start's log up to the node being Ready.
	firstStart []byte
	// danglingLogLink is a link in /var/log/containers planted before the
	// first start, to a log under a data dir that does not exist.
	danglingLogLink string

	cmd    *exec.Cmd
	logf   *os.File
	exited chan struct{} // closed once cmd has been waited for
	client kubernetes.Interface
}

// the is the package's cluster, set by TestMain before any test runs.
var the *cluster

func TestMain(m *testing.M) {
	flag.Parse()
	// Most of the time goes to waiting for the kubelet, so a few tests at
	// once even on two cores; -parallel on the command line still wins.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "4")
	}
	if testing.Short() {
		fmt.Println("skipping the node e2e tests in -short mode")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Println("skipping the node e2e tests: they run containerd and the kubelet, which need root")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	c, err := newCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "node e2e:", err)
		return 1
	}
	defer func() {
		if code != 0 {
			c.dumpLog(150)
		}
		if err := c.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "node e2e: cleanup:", err)
			code = 1
		}
	}()
	// A link to a container log of a node whose data dir is gone, as one
	// deleted without teardown leaves (TestFirstStartLog).
	if c.danglingLogLink, err = plantDanglingLogLink(); err != nil {
		fmt.Fprintln(os.Stderr, "node e2e:", err)
		return 1
	}
	defer os.Remove(c.danglingLogLink)
	if err := c.start(); err != nil {
		fmt.Fprintln(os.Stderr, "node e2e:", err)
		return 1
	}
	warnOtherAgents(c)
	the = c
	return m.Run()
}

func newCluster() (*cluster, error) {
	bin, err := skiffBinary()
	if err != nil {
		return nil, err
	}
	// e2eutil.Kubectls finds the embedded kubectl through SKIFF_BIN.
	if err := os.Setenv("SKIFF_BIN", bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "skiff-e2e-node-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, dataDir: filepath.Join(dir, "data"), nodeName: "e2e-node-" + randomSuffix()}
	c.kubeconfig = filepath.Join(c.dataDir, "kubeconfig.yaml")
	if c.port, err = freeport.Pick(); err != nil {
		return nil, err
	}
	if c.kubelet, err = freeport.Pick(); err != nil {
		return nil, err
	}
	return c, nil
}

// skiffBinary is $SKIFF_BIN, or bin/skiff after `make build` in the module.
func skiffBinary() (string, error) {
	if p := os.Getenv("SKIFF_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SKIFF_BIN: %w", err)
		}
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("make", "build")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make build: %v\n%s", err, out)
	}
	return filepath.Join(root, "bin", "skiff"), nil
}

// start starts the server (again, on the same data dir and ports) and waits
// until it is ready and its node is Ready.
func (c *cluster) start() error {
	c.starts++
	logPath := filepath.Join(c.dir, fmt.Sprintf("server-%d.log", c.starts))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	c.logf = f
	c.cmd = exec.Command(c.bin, "server",
		"--data-dir", c.dataDir,
		"--https-listen-port", strconv.Itoa(c.port),
		"--bind-address", "127.0.0.1",
		"--kubelet-port", strconv.Itoa(c.kubelet),
		"--node-name", c.nodeName,
	)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	// Its own process group, so a kill reaches all of it (the agent's
	// containerd puts itself in a group of its own and survives, on purpose).
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s server: %w", c.bin, err)
	}
	exited := make(chan struct{})
	c.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(c.cmd)

	began := time.Now()
	deadline := began.Add(3 * time.Minute)
	for {
		data, _ := os.ReadFile(logPath)
		if bytes.Contains(data, []byte(readyLine)) {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("skiff server exited before it was ready; log %s:\n%s", logPath, tail(data, 40))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("skiff server not ready within 3m; log %s:\n%s", logPath, tail(data, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	cfg.Timeout = 30 * time.Second
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// After a restart the node's Ready condition is the last kubelet's
	// until the new one reports: the start is done once the new kubelet
	// also serves on its port.
	for {
		n, err := c.client.CoreV1().Nodes().Get(ctx, c.nodeName, metav1.GetOptions{})
		if err == nil && nodeReady(n) && kubeletServes(n, c.kubelet) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s not Ready with its kubelet serving within 2m (last error %v)", c.nodeName, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("skiff server (start %d) with node %s ready in %s\n", c.starts, c.nodeName, time.Since(began).Round(time.Millisecond))
	if c.starts == 1 {
		c.firstStart, _ = os.ReadFile(logPath)
	}
	return nil
}

// kubeletServes reports whether the kubelet accepts connections on its port
// at the node's InternalIP.
func kubeletServes(n *corev1.Node, port int) bool {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(a.Address, strconv.Itoa(port)), time.Second)
			if err != nil {
				return false
			}
			conn.Close()
			return true
		}
	}
	return false
}

// stop sends SIGTERM to the server process alone (as systemd or Ctrl-C
// would) and waits up to d for it to exit; it returns how long that took
// and the exit status (-1: still running after d, then killed).
func (c *cluster) stop(d time.Duration) (time.Duration, int) {
	began := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(d):
		c.kill()
		return time.Since(began), -1
	}
	c.logf.Close()
	return time.Since(began), c.cmd.ProcessState.ExitCode()
}

// kill SIGKILLs the server's process group and waits for it to be gone.
func (c *cluster) kill() {
	if c.cmd == nil {
		return
	}
	select {
	case <-c.exited:
	default:
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	c.logf.Close()
}

// destroy kills the server, tears its agent down (containerd, containers,
// mounts) and removes the data directory.
func (c *cluster) destroy() error {
	c.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, "agent", "teardown", "--data-dir", filepath.Join(c.dataDir, "agent")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skiff agent teardown: %v\n%s", err, out)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove %s after teardown: %w", c.dir, err)
	}
	return nil
}

// logPath is the current (or last) server process's log.
func (c *cluster) logPath() string {
	return filepath.Join(c.dir, fmt.Sprintf("server-%d.log", c.starts))
}

func (c *cluster) dumpLog(n int) {
	data, _ := os.ReadFile(c.logPath())
	fmt.Fprintf(os.Stderr, "--- last %d lines of %s ---\n%s\n", n, c.logPath(), tail(data, n))
}

func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// httpGet GETs url from the host with a short timeout.
func httpGet(url string) (int, string, error) {
	// A new connection per request, so a Service picks a backend each time.
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return resp.StatusCode, b.String(), err
	}
	return resp.StatusCode, b.String(), nil
}

// warnOtherAgents says when other skiff agents run on this machine: every
// agent's CNI bridge is skiff0 and every cluster's first node gets the
// podCIDR 10.42.0.0/24 with IPAM state of its own, so their pods can hold
// the same IPs as ours, and a GET to one of our pod IPs may land elsewhere.
func warnOtherAgents(c *cluster) {
	own := filepath.Join(c.dataDir, "agent", "containerd")
	entries, _ := os.ReadDir("/proc")
	var others []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 3 && filepath.Base(args[0]) == "containerd" && args[1] == "--config" &&
			strings.HasSuffix(args[2], "/containerd/config.toml") && !strings.HasPrefix(args[2], own) {
			others = append(others, args[2])
		}
	}
	if len(others) > 0 {
		fmt.Printf("warning: other containerds run on this machine (%s); skiff agents share the bridge skiff0 and the podCIDR 10.42.0.0/24, so pod IPs may collide\n", strings.Join(others, ", "))
	}
}
