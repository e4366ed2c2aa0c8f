// Package gctune sets the Go garbage collector's heap target by the
// process's load: a lean heap while the process is idle, where collecting
// more often costs little CPU because little is allocated, and the runtime's
// default under load, where a lean heap would cost throughput (docs/perf.md:
// GOGC=50 took 15–22 % off the API server's write throughput on two
// cores). A GOGC set in the environment is the user's choice and is left
// alone.
package gctune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Config says when the process counts as idle and what each state gets.
// The zero value takes the defaults.
type Config struct {
	// IdlePercent is GOGC while idle (default 25).
	IdlePercent int
	// BusyPercent is GOGC under load (default 100, the runtime's).
	BusyPercent int
	// IdleRate is the allocation rate, in bytes per second, below which
	// the process is idle (default 16 MiB/s).
	IdleRate float64
	// Interval is how often the rate is sampled (default 5 s); the process
	// turns busy on one sample over IdleRate and idle after IdleSamples
	// under it.
	Interval    time.Duration
	IdleSamples int
	Log         *slog.Logger
}

func (c *Config) defaults() {
	if c.IdlePercent == 0 {
		c.IdlePercent = 25
	}
	if c.BusyPercent == 0 {
		c.BusyPercent = 100
	}
	if c.IdleRate == 0 {
		c.IdleRate = 16 << 20
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.IdleSamples == 0 {
		c.IdleSamples = 3
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// running makes Run a no-op for all but the first caller of a process (a
// server and its own agent share one).
var running sync.Mutex

// Run tunes the collector until ctx ends, then restores BusyPercent.
func Run(ctx context.Context, cfg Config) error {
	if _, set := os.LookupEnv("GOGC"); set {
		<-ctx.Done()
		return nil
	}
	if !running.TryLock() {
		<-ctx.Done()
		return nil
	}
	defer running.Unlock()
	cfg.defaults()
	s := &state{cfg: cfg, percent: -1}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	last, lastAt := sample[0].Value.Uint64(), time.Now()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	defer debug.SetGCPercent(cfg.BusyPercent)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			metrics.Read(sample)
			cur := sample[0].Value.Uint64()
			rate := float64(cur-last) / now.Sub(lastAt).Seconds()
			last, lastAt = cur, now
			if p, changed := s.observe(rate); changed {
				debug.SetGCPercent(p)
				cfg.Log.Debug("GC target", "GOGC", p, "allocRate", int64(rate))
			}
		}
	}
}

// state is the decision, apart from the runtime so it can be tested.
type state struct {
	cfg       Config
	idleCount int
	percent   int
}

// observe takes one allocation rate sample and returns the GOGC to use and
// whether it changed.
func (s *state) observe(rate float64) (int, bool) {
	want := s.percent
	if rate >= s.cfg.IdleRate {
		s.idleCount = 0
		want = s.cfg.BusyPercent
	} else {
		s.idleCount++
		if s.idleCount >= s.cfg.IdleSamples {
			want = s.cfg.IdlePercent
		} else if want < 0 {
			want = s.cfg.BusyPercent
		}
	}
	changed := want != s.percent
	s.percent = want
	return want, changed
}
