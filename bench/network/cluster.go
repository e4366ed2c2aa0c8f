package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// The benchmark's namespace: a veth pair with both ends inside it (this
// kernel has no dummy links), one holding the node's address, and a default
// route over it so that ClusterIPs (which no interface holds) are
// routable before kube-proxy's DNAT.
const (
	nodeIP   = "172.31.252.1"
	nodeName = "bench-network"
	link     = "bench0"
)

// inNamespace creates the network namespace, runs this program again inside
// it with args (plus -in-netns), and removes the namespace after.
func inNamespace(ctx context.Context, ns string, args []string) error {
	if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
		return fmt.Errorf("network namespace %s exists: another run, or a stale one (ip netns del %s)", ns, ns)
	}
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "add", link, "type", "veth", "peer", "name", link + "p"},
		{"ip", "-n", ns, "addr", "add", nodeIP + "/24", "dev", link},
		{"ip", "-n", ns, "link", "set", link + "p", "up"},
		{"ip", "-n", ns, "link", "set", link, "up"},
		{"ip", "-n", ns, "route", "add", "default", "dev", link},
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip netns del %s: %v %s\n", ns, err, out)
		}
	}()
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v %s", strings.Join(s, " "), err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// nsenter --net only: the agent keeps the host's mounts (cgroups).
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + ns, self, "-in-netns"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt) // the child tears its cluster down
		err = <-done
	}
	return err
}

// cluster is one `skiff server` with its agent.
type cluster struct {
	skiff  string
	keep   bool
	root   string
	args   []string // the server's extra flags
	server *benchkit.Server
	client kubernetes.Interface
}

func startCluster(ctx context.Context, o options) (*cluster, error) {
	root, err := os.MkdirTemp("", "skiff-bench-network-")
	if err != nil {
		return nil, err
	}
	c := &cluster{skiff: o.skiff, keep: o.keep, root: root, args: []string{
		"--advertise-address", nodeIP, "--node-ip", nodeIP, "--node-name", nodeName,
		"--images-dir", o.imagesDir,
	}}
	c.server, err = benchkit.StartServer(benchkit.ServerOptions{
		Binary: o.skiff, DataDir: filepath.Join(root, "server"), Args: c.args,
	})
	if err != nil {
		return c, err
	}
	if _, err := c.server.WaitReady(ctx, 3*time.Minute); err != nil {
		return c, err
	}
	cfg, err := benchkit.RestConfig(c.server.Kubeconfig())
	if err != nil {
		return c, err
	}
	if c.client, err = benchkit.Clientset(cfg); err != nil {
		return c, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !c.nodeReady(ctx) {
		if time.Now().After(deadline) {
			return c, fmt.Errorf("node %s not Ready within 3m; see %s.log", nodeName, c.server.DataDir)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return c, ctx.Err()
		}
	}
	return c, nil
}

func (c *cluster) nodeReady(ctx context.Context) bool {
	n, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// teardown stops the server and removes its agent's leftovers. Inside the
// benchmark's own namespace, `skiff agent teardown` touches no one else's
// bridge or nftables tables.
func (c *cluster) teardown() error {
	var errs []error
	if c.server != nil {
		if err := c.server.Stop(); err != nil {
			errs = append(errs, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		agentDir := filepath.Join(c.server.DataDir, "agent")
		if out, err := exec.CommandContext(ctx, c.skiff, "agent", "teardown", "--data-dir", agentDir).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("skiff agent teardown: %v\n%s", err, out))
		}
	}
	if c.keep {
		fmt.Println("data directory and logs kept in", c.root)
	} else {
		os.RemoveAll(c.root)
	}
	return errors.Join(errs...)
}

// serviceIPs lists kube-proxy's map from ClusterIP, protocol and port to
// each Service's chain: one `nft list map`, cheaper than the whole table.
func serviceIPs(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "nft", "list", "map", "ip", "kube-proxy", "service-ips").CombinedOutput()
	return string(out), err
}

func sleep(ctx context.Context, d time.Duration) bool { return benchkit.Sleep(ctx, d) }
