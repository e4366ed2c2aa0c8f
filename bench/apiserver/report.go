package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// report collects the figures as they are taken and prints them as one
// Markdown table at the end.
type report struct {
	mu   sync.Mutex // guards the following
	rows []row
}

type row struct {
	what, value, target, verdict string
}

// add records a figure with no target.
func (r *report) add(what, value string) { r.addTarget(what, value, "", "") }

// addTarget records a figure with its target and whether it met it.
func (r *report) addTarget(what, value, target, verdict string) {
	r.mu.Lock()
	r.rows = append(r.rows, row{what, value, target, verdict})
	r.mu.Unlock()
	fmt.Printf("  %-58s %s\n", what, value)
}

func (r *report) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "\n## Results\n\n| measurement | result | target | |\n|---|---|---|---|\n")
	for _, x := range r.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.what, x.value, x.target, x.verdict)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// loadSampler reads the 1-minute load average every 10 s.
type loadSampler struct {
	cancel context.CancelFunc
	done   chan struct{} // closed by the sampling goroutine
	// samples is written by the sampling goroutine until done is closed.
	samples []float64
}

func startLoadSampler(ctx context.Context) *loadSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &loadSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			if data, err := os.ReadFile("/proc/loadavg"); err == nil {
				f := strings.Fields(string(data))
				if v, err := strconv.ParseFloat(f[0], 64); err == nil {
					s.samples = append(s.samples, v)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *loadSampler) stop() string {
	s.cancel()
	<-s.done
	if len(s.samples) == 0 {
		return "not sampled"
	}
	lo, hi, sum := s.samples[0], s.samples[0], 0.0
	for _, v := range s.samples {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	return fmt.Sprintf("min %.2f, mean %.2f, max %.2f over %d samples", lo, sum/float64(len(s.samples)), hi, len(s.samples))
}
