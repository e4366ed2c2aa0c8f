package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// watchFanout opens plan.watchers watches on one namespace over
// plan.watchClients HTTP/2 connections, creates a burst of plan.burst pods
// there, and times until every watcher has received every event.
func (b *bench) watchFanout(ctx context.Context, s *benchkit.Server, cfg *rest.Config, admin *kubernetes.Clientset) error {
	const ns = "bench-watch"
	nw, burst := b.plan.watchers, b.plan.burst
	fmt.Printf("== %d watchers on %d connections, a burst of %d pod creations\n", nw, b.plan.watchClients, burst)
	if err := namespace(ctx, admin, ns); err != nil {
		return err
	}
	l, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	conns, err := clientsets(cfg, b.plan.watchClients)
	if err != nil {
		return err
	}
	defer closeClients(conns)

	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var (
		opened   = make([]watch.Interface, nw)
		openErr  atomic.Value
		openWG   sync.WaitGroup
		openGate = make(chan struct{}, 50) // at most 50 watch requests in flight
	)
	t0 := time.Now()
	for i := range nw {
		openWG.Add(1)
		go func() {
			defer openWG.Done()
			openGate <- struct{}{}
			defer func() { <-openGate }()
			w, err := conns[i%len(conns)].CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
			if err != nil {
				openErr.CompareAndSwap(nil, err)
				return
			}
			opened[i] = w
		}()
	}
	openWG.Wait()
	openTime := time.Since(t0)
	defer func() {
		for _, w := range opened {
			if w != nil {
				w.Stop()
			}
		}
	}()
	if err, ok := openErr.Load().(error); ok {
		return fmt.Errorf("open watches: %w", err)
	}
	b.report.Add(fmt.Sprintf("open %d watches on %d connections", nw, len(conns)), benchkit.Ms(openTime))

	// Each watcher counts ADDED events and records when it has them all.
	var (
		start    time.Time
		startSet = make(chan struct{}) // closed once start is set
		done     benchkit.Latencies
		doneWG   sync.WaitGroup
		complete atomic.Int64
	)
	for _, w := range opened {
		doneWG.Add(1)
		go func() {
			defer doneWG.Done()
			got := 0
			for e := range w.ResultChan() {
				if e.Type != watch.Added {
					continue
				}
				if got++; got == burst {
					<-startSet
					done.Add(time.Since(start))
					complete.Add(1)
					return
				}
			}
		}()
	}
	time.Sleep(time.Second) // let the last watches settle in the watch cache
	memWatching, _ := s.Memory()

	start = time.Now()
	close(startSet)
	creators, err := clientsets(cfg, 10)
	if err != nil {
		return err
	}
	defer closeClients(creators)
	create := runOps(wctx, creators, burst, time.Minute, func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(ns).Create(ctx, pod(fmt.Sprintf("w-%04d", i), "watch"), metav1.CreateOptions{})
		return err
	})
	if create.errs > 0 {
		return fmt.Errorf("burst: %v", create.firstErr)
	}
	waited := make(chan struct{})
	go func() { doneWG.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
	}
	all := time.Since(start)
	got := complete.Load()
	sum := done.Summary()
	if got < int64(nw) {
		b.report.Add(fmt.Sprintf("%d watchers × %d events", nw, burst),
			fmt.Sprintf("only %d of %d watchers got every event within %s", got, nw, benchkit.Ms(all)))
		return nil
	}
	b.report.Add(fmt.Sprintf("%d watchers × %d events: until every watcher had every event", nw, burst),
		fmt.Sprintf("%s (burst created in %s; per watcher p50 %s, p99 %s; %.0f events/s delivered)",
			benchkit.Ms(sum.Max), benchkit.Ms(create.wall), benchkit.Ms(sum.P50), benchkit.Ms(sum.P99),
			float64(nw*burst)/sum.Max.Seconds()))
	b.report.Add(fmt.Sprintf("server RSS with %d watches open (and the pods above)", nw), memWatching.String())
	return nil
}
