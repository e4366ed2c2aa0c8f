package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const readyTimeout = 3 * time.Minute

// startup times process start to /readyz 200, on fresh data directories
// and then restarting on the last one, with skiff's default components.
func (b *bench) startup(ctx context.Context) error {
	fmt.Println("== start to ready (default components: API server, controller manager, scheduler)")
	var fresh, restart []time.Duration
	var dir string
	for i := range b.plan.starts {
		dir = b.dataDir(fmt.Sprintf("start-%d", i))
		d, err := b.startStop(ctx, dir)
		if err != nil {
			return err
		}
		fmt.Printf("  fresh start %d: %s\n", i+1, benchkit.Ms(d))
		fresh = append(fresh, d)
	}
	for i := range b.plan.starts {
		d, err := b.startStop(ctx, dir)
		if err != nil {
			return err
		}
		fmt.Printf("  restart %d:     %s\n", i+1, benchkit.Ms(d))
		restart = append(restart, d)
	}
	for _, x := range []struct {
		name string
		d    []time.Duration
	}{{"fresh data dir", fresh}, {"restart on existing data dir", restart}} {
		s := benchkit.Summarize(x.d)
		b.report.AddTarget(fmt.Sprintf("start to /readyz 200, %s (median of %d)", x.name, s.N),
			fmt.Sprintf("%s (min %s, max %s)", benchkit.Ms(s.P50), benchkit.Ms(s.Min), benchkit.Ms(s.Max)),
			"< 1 s", benchkit.Verdict(s.P50 < time.Second))
	}
	return nil
}

func (b *bench) startStop(ctx context.Context, dir string) (time.Duration, error) {
	s, err := benchkit.StartServer(benchkit.ServerOptions{Binary: b.skiff, DataDir: dir, Env: b.env, Args: b.args})
	if err != nil {
		return 0, err
	}
	d, err := s.WaitReady(ctx, readyTimeout)
	if stopErr := s.Stop(); err == nil {
		err = stopErr
	}
	return d, err
}

// idleFull reads the RSS of a server running every component, idle.
func (b *bench) idleFull(ctx context.Context) error {
	fmt.Println("== idle, every component on")
	s, err := benchkit.StartServer(benchkit.ServerOptions{Binary: b.skiff, DataDir: b.dataDir("idle-full"), Env: b.env, Args: b.args})
	if err != nil {
		return err
	}
	defer s.Stop()
	if _, err := s.WaitReady(ctx, readyTimeout); err != nil {
		return err
	}
	return b.idleRSS(ctx, s, "everything on (API server, controller manager, scheduler, etcd)")
}

// idleRSS waits plan.idle after ready, then records the server's RSS and
// the Go runtime's own view of it from /metrics.
func (b *bench) idleRSS(ctx context.Context, s *benchkit.Server, what string) error {
	select {
	case <-time.After(b.plan.idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	m, err := s.Memory()
	if err != nil {
		return err
	}
	b.report.AddTarget(fmt.Sprintf("idle RSS %s after ready, %s", b.plan.idle, what),
		m.String(), "< 120 MiB", benchkit.Verdict(m.RSS < 120<<20))
	b.goMemory(ctx, s, "idle, "+what)
	return nil
}

// goMemory records the Go heap figures the server exports on /metrics.
func (b *bench) goMemory(ctx context.Context, s *benchkit.Server, what string) {
	cfg, err := benchkit.RestConfig(s.Kubeconfig())
	if err != nil {
		return
	}
	cs, err := benchkit.Clientset(cfg)
	if err != nil {
		return
	}
	defer closeClients([]*kubernetes.Clientset{cs})
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.heapProfile(mctx, cs, what)
	m, err := benchkit.Scrape(mctx, cs.CoreV1().RESTClient())
	if err != nil {
		fmt.Println("  (no /metrics:", err, ")")
		return
	}
	b.report.Add("Go memory "+what,
		fmt.Sprintf("heap in use %s, heap idle %s (released %s), stacks %s, sys %s, %d goroutines",
			benchkit.MiB(int64(m["go_memstats_heap_inuse_bytes"])), benchkit.MiB(int64(m["go_memstats_heap_idle_bytes"])),
			benchkit.MiB(int64(m["go_memstats_heap_released_bytes"])), benchkit.MiB(int64(m["go_memstats_stack_inuse_bytes"])),
			benchkit.MiB(int64(m["go_memstats_sys_bytes"])), int(m["go_goroutines"])))
}

// heapProfile saves the API server process's heap profile when -heap-profiles is set.
func (b *bench) heapProfile(ctx context.Context, cs *kubernetes.Clientset, what string) {
	if b.heapDir != "" {
		benchkit.SaveHeapProfile(ctx, cs, b.heapDir, what)
	}
}
