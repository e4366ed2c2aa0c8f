package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
	sim    *benchkit.Sim
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
	for i, sc := range b.opts.scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("\n## %s (load %s)\n", sc, benchkit.LoadAvg())
		// The last scenario's pods go with the server and its data
		// directory; deleting them (minutes at 30,000) measures nothing.
		last := i == len(b.opts.scenarios)-1
		if err := b.scenario(ctx, sc, !last); err != nil {
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
	if b.server, b.rc, b.client, err = benchkit.StartControlPlane(ctx, b.opts.skiff, filepath.Join(b.root, "server"), b.opts.serverArgs...); err != nil {
		return err
	}
	b.memory("server RSS, ready, no nodes")

	if b.sim, err = benchkit.StartSim(benchkit.SimOptions{
		Binary: b.opts.skiff, Kubeconfig: b.server.Kubeconfig(), Nodes: b.opts.nodes, Prefix: simPrefix,
		QPS: b.opts.simQPS, Log: filepath.Join(b.root, "sim.log"),
	}); err != nil {
		return err
	}
	fmt.Printf("skiff sim started (pid %d, %d nodes)\n", b.sim.PID(), b.opts.nodes)
	began := time.Now()
	if err := b.sim.WaitNodes(ctx, b.client, 10*time.Minute); err != nil {
		return err
	}
	b.report.Add(fmt.Sprintf("%d simulated nodes registered and schedulable", b.opts.nodes), benchkit.Ms(time.Since(began)))
	// Let the registration burst settle before the idle reading.
	sleep(ctx, 10*time.Second)
	b.memory(fmt.Sprintf("server RSS, %d nodes, no pods", b.opts.nodes))
	return nil
}

// memory records the server's and the sim's resident memory.
func (b *bench) memory(what string) {
	if m, err := b.server.Memory(); err == nil {
		b.report.Add(what, m.String())
	} else {
		b.report.Add(what, "unreadable: "+err.Error())
	}
	b.heapProfile(what)
}

// heapProfile saves the server's heap profile when -heap-profiles is set.
func (b *bench) heapProfile(what string) {
	if b.opts.heapDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		benchkit.SaveHeapProfile(ctx, b.client, b.opts.heapDir, what)
	}
}

// stop stops sim, then the server (reverse of start).
func (b *bench) stop() {
	if b.sim != nil {
		b.sim.Stop()
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
