package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// SimOptions say how to start `skiff sim`.
type SimOptions struct {
	Binary     string // the skiff executable
	Kubeconfig string
	Nodes      int
	Prefix     string // the nodes' name prefix
	QPS        int    // its client's rate limit (burst twice that)
	Log        string // where its output goes
	// StartDelay is how long a bound pod takes to run (default 0: at once).
	StartDelay time.Duration
}

// Sim is a running `skiff sim` subprocess: simulated nodes acting as
// kubelets through the API, whose pods go Running once bound.
type Sim struct {
	opts SimOptions
	cmd  *exec.Cmd
	out  *os.File
	end  chan struct{} // closed once cmd has been waited for
}

// StartSim starts the simulated nodes (pods bound to them run at once).
func StartSim(o SimOptions) (*Sim, error) {
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, err
	}
	out, err := os.Create(o.Log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "sim",
		"--kubeconfig", o.Kubeconfig,
		"--nodes", strconv.Itoa(o.Nodes),
		"--name-prefix", o.Prefix,
		"--start-delay", o.StartDelay.String(),
		"--kube-api-qps", strconv.Itoa(o.QPS),
		"--kube-api-burst", strconv.Itoa(2*o.QPS),
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start skiff sim: %w", err)
	}
	s := &Sim{opts: o, cmd: cmd, out: out, end: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.end) }()
	return s, nil
}

// PID is the sim's process.
func (s *Sim) PID() int { return s.cmd.Process.Pid }

// WaitNodes polls until every simulated node is Ready without the
// not-ready taint, which the scheduler honours.
func (s *Sim) WaitNodes(ctx context.Context, client kubernetes.Interface, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	lastPrint := time.Now()
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		ready := 0
		if err == nil {
			for i := range list.Items {
				if n := &list.Items[i]; strings.HasPrefix(n.Name, s.opts.Prefix) && Schedulable(n) {
					ready++
				}
			}
		}
		if ready >= s.opts.Nodes {
			return nil
		}
		select {
		case <-s.end:
			return fmt.Errorf("skiff sim exited; see %s", s.out.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes schedulable after %s (last error %v)", ready, s.opts.Nodes, limit, err)
		}
		if time.Since(lastPrint) > 15*time.Second {
			fmt.Printf("  %d of %d nodes schedulable\n", ready, s.opts.Nodes)
			lastPrint = time.Now()
		}
		if !Sleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

// Schedulable reports whether n is Ready and without the not-ready and
// unreachable taints.
func Schedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop stops the sim (SIGTERM, then SIGKILL after 20 s).
func (s *Sim) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.end:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.end
	}
	s.out.Close()
}

// StartControlPlane starts `skiff server --disable-agent` for simulated
// nodes (a /9 cluster CIDR, clear of the default service CIDR 10.43.0.0/16,
// leaves a /24 podCIDR for each of thousands),
// waits until it is ready, saying so, and returns it with a client. extra
// are further `skiff server` flags.
func StartControlPlane(ctx context.Context, binary, dataDir string, extra ...string) (*Server, *rest.Config, *kubernetes.Clientset, error) {
	s, err := StartServer(ServerOptions{
		Binary:  binary,
		DataDir: dataDir,
		Args:    append([]string{"--disable-agent", "--cluster-cidr", "10.128.0.0/9"}, extra...),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	took, err := s.WaitReady(ctx, 5*time.Minute)
	if err != nil {
		return s, nil, nil, err
	}
	fmt.Printf("server ready in %s (pid %d, port %d)\n", took.Round(time.Millisecond), s.PID(), s.Port)
	rc, err := RestConfig(s.Kubeconfig())
	if err != nil {
		return s, nil, nil, err
	}
	client, err := Clientset(rc)
	return s, rc, client, err
}
