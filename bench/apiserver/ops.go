package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// opResult is one timed phase of many operations.
type opResult struct {
	lat      benchkit.Summary
	done     int // operations that returned, with or without error
	errs     int
	firstErr error
	wall     time.Duration
}

func (r opResult) perSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.done-r.errs) / r.wall.Seconds()
}

func (r opResult) String() string {
	s := fmt.Sprintf("p50 %s, p99 %s, %.0f/s", benchkit.Ms(r.lat.P50), benchkit.Ms(r.lat.P99), r.perSecond())
	if r.errs > 0 {
		s += fmt.Sprintf(" (%d errors, first: %v)", r.errs, r.firstErr)
	}
	return s
}

// runOps runs operations 0..total-1, one worker goroutine per client each
// taking the next index, until all are done or limit passes. It returns
// once every worker has.
func runOps(ctx context.Context, clients []*kubernetes.Clientset, total int, limit time.Duration,
	op func(ctx context.Context, c kubernetes.Interface, i int) error) opResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		next, errs atomic.Int64
		lat        benchkit.Latencies
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				t0 := time.Now()
				err := op(ctx, c, i)
				if err != nil {
					if ctx.Err() != nil {
						return // the phase's time ran out mid-request
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat.Add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r := opResult{lat: lat.Summary(), errs: int(errs.Load()), wall: time.Since(start)}
	r.done = r.lat.N + r.errs
	if e, ok := firstErr.Load().(error); ok {
		r.firstErr = e
	}
	if r.done < total {
		r.firstErr = fmt.Errorf("only %d of %d operations within %s (first error: %v)", r.done, total, limit, r.firstErr)
		r.errs += total - r.done
	}
	return r
}

// clientsets makes n typed clients, each on its own connection.
func clientsets(cfg *rest.Config, n int) ([]*kubernetes.Clientset, error) {
	out := make([]*kubernetes.Clientset, n)
	for i := range out {
		c, err := benchkit.Clientset(cfg)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// closeClients drops the clients' idle connections.
func closeClients(cs []*kubernetes.Clientset) {
	for _, c := range cs {
		if rc, ok := c.CoreV1().RESTClient().(*rest.RESTClient); ok && rc.Client != nil {
			rc.Client.CloseIdleConnections()
		}
	}
}
