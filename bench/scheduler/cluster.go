package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// simPrefix names the simulated nodes.
const simPrefix = "sim-"

// bench is one run of the benchmark.
type bench struct {
	opts   options
	root   string // data directory and logs
	report *benchkit.Report

	server *benchkit.Server
	sim    *exec.Cmd
	simOut *os.File
	simEnd chan struct{} // closed once sim has been waited for
	rc     *rest.Config
	client *kubernetes.Clientset
}

func (b *bench) run(ctx context.Context) error {
	header(b.opts)
	load := benchkit.StartLoadSampler(ctx, 10*time.Second)
	err := b.runAll(ctx)
	b.stop()
	b.report.Print(os.Stdout)
	fmt.Printf("\nload average (1 min) during the run: %s\n", load.Stop())
	return err
}

func (b *bench) runAll(ctx context.Context) error {
	if err := b.start(ctx); err != nil {
		return err
	}
	var errs []error
	for _, sc := range b.opts.scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("\n## %s (load %s)\n", sc, benchkit.LoadAvg())
		if err := b.scenario(ctx, sc); err != nil {
			fmt.Printf("  %s: %v\n", sc, err)
			errs = append(errs, fmt.Errorf("%s: %w", sc, err))
		}
	}
	return errors.Join(errs...)
}

// start starts the server and the simulated nodes and waits until every
// node is schedulable.
func (b *bench) start(ctx context.Context) error {
	var err error
	b.server, err = benchkit.StartServer(benchkit.ServerOptions{
		Binary:  b.opts.skiff,
		DataDir: filepath.Join(b.root, "server"),
		Args:    []string{"--disable-agent", "--cluster-cidr", "10.0.0.0/8"},
	})
	if err != nil {
		return err
	}
	took, err := b.server.WaitReady(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("server ready in %s (pid %d, port %d)\n", took.Round(time.Millisecond), b.server.PID(), b.server.Port)
	if b.rc, err = benchkit.RestConfig(b.server.Kubeconfig()); err != nil {
		return err
	}
	if b.client, err = benchkit.Clientset(b.rc); err != nil {
		return err
	}
	b.memory("server RSS, ready, no nodes")

	if err := b.startSim(); err != nil {
		return err
	}
	began := time.Now()
	if err := b.waitNodes(ctx, 10*time.Minute); err != nil {
		return err
	}
	b.report.Add(fmt.Sprintf("%d simulated nodes registered and schedulable", b.opts.nodes), benchkit.Ms(time.Since(began)))
	// Let the registration burst settle before the idle reading.
	sleep(ctx, 10*time.Second)
	b.memory(fmt.Sprintf("server RSS, %d nodes, no pods", b.opts.nodes))
	return nil
}

func (b *bench) startSim() error {
	bin, err := filepath.Abs(b.opts.skiff)
	if err != nil {
		return err
	}
	if b.simOut, err = os.Create(filepath.Join(b.root, "sim.log")); err != nil {
		return err
	}
	b.sim = exec.Command(bin, "sim",
		"--kubeconfig", b.server.Kubeconfig(),
		"--nodes", strconv.Itoa(b.opts.nodes),
		"--name-prefix", simPrefix,
		"--start-delay", "0",
		"--kube-api-qps", strconv.Itoa(b.opts.simQPS),
		"--kube-api-burst", strconv.Itoa(2*b.opts.simQPS),
	)
	b.sim.Stdout, b.sim.Stderr = b.simOut, b.simOut
	b.sim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.sim.Start(); err != nil {
		b.simOut.Close()
		return fmt.Errorf("start skiff sim: %w", err)
	}
	b.simEnd = make(chan struct{})
	go func() { _ = b.sim.Wait(); close(b.simEnd) }()
	fmt.Printf("skiff sim started (pid %d, %d nodes)\n", b.sim.Process.Pid, b.opts.nodes)
	return nil
}

// waitNodes polls until every simulated node is Ready without the
// not-ready taint, which the scheduler honours.
func (b *bench) waitNodes(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	lastPrint := time.Now()
	for {
		list, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		ready := 0
		if err == nil {
			for i := range list.Items {
				if n := &list.Items[i]; strings.HasPrefix(n.Name, simPrefix) && schedulable(n) {
					ready++
				}
			}
		}
		if ready >= b.opts.nodes {
			return nil
		}
		select {
		case <-b.simEnd:
			return fmt.Errorf("skiff sim exited; see %s", b.simOut.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes schedulable after %s (last error %v)", ready, b.opts.nodes, limit, err)
		}
		if time.Since(lastPrint) > 15*time.Second {
			fmt.Printf("  %d of %d nodes schedulable\n", ready, b.opts.nodes)
			lastPrint = time.Now()
		}
		if !sleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

func schedulable(n *corev1.Node) bool {
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

// memory records the server's and the sim's resident memory.
func (b *bench) memory(what string) {
	if m, err := b.server.Memory(); err == nil {
		b.report.Add(what, m.String())
	} else {
		b.report.Add(what, "unreadable: "+err.Error())
	}
}

// stop stops sim, then the server (reverse of start).
func (b *bench) stop() {
	if b.sim != nil {
		_ = b.sim.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.simEnd:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-b.sim.Process.Pid, syscall.SIGKILL)
			<-b.simEnd
		}
		b.simOut.Close()
	}
	if b.server != nil {
		if err := b.server.Stop(); err != nil {
			fmt.Println("stop server:", err)
		}
	}
}

// deleteNamespace force-deletes the namespace's pods (grace period 0: the
// simulated kubelets need not play out 30,000 graceful deletions), deletes
// the namespace and waits until it is gone.
func (b *bench) deleteNamespace(ctx context.Context, ns string, limit time.Duration) error {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	_ = b.client.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{})
	_ = b.client.AppsV1().ReplicaSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{})
	if err := b.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	zero := int64(0)
	for {
		_ = b.client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_, err := b.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			fmt.Printf("  namespace %s deleted in %s\n", ns, time.Since(began).Round(time.Millisecond))
			return nil
		}
		if !sleep(ctx, 2*time.Second) {
			return fmt.Errorf("namespace %s not gone after %s", ns, limit)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool { return benchkit.Sleep(ctx, d) }
