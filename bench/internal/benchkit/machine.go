package benchkit

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// LoadAvg is the 1, 5 and 15-minute load averages as /proc/loadavg prints them.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// MemTotal is the first line of /proc/meminfo ("MemTotal: … kB").
func MemTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.Join(strings.Fields(line), " ")
}

// LoadSampler reads the 1-minute load average every interval until stopped.
type LoadSampler struct {
	cancel context.CancelFunc
	done   chan struct{} // closed by the sampling goroutine
	// samples is written by the sampling goroutine until done is closed.
	samples []float64
}

// StartLoadSampler starts sampling now and every interval after.
func StartLoadSampler(ctx context.Context, interval time.Duration) *LoadSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &LoadSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if data, err := os.ReadFile("/proc/loadavg"); err == nil {
				if f := strings.Fields(string(data)); len(f) > 0 {
					if v, err := strconv.ParseFloat(f[0], 64); err == nil {
						s.samples = append(s.samples, v)
					}
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

// Stop ends sampling and summarises the samples ("min …, mean …, max …").
func (s *LoadSampler) Stop() string {
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

// PrintHeader prints a benchmark report's first lines: its title, the date,
// the skiff binary measured (size and build time) and the machine.
func PrintHeader(w io.Writer, title, skiff string) {
	binary := skiff
	if fi, err := os.Stat(skiff); err == nil {
		binary = fmt.Sprintf("%s (%.0f MB, built %s)", skiff, float64(fi.Size())/1e6, fi.ModTime().UTC().Format(time.RFC3339))
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "# %s\n", title)
	fmt.Fprintf(w, "date:    %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "skiff:   %s\n", binary)
	fmt.Fprintf(w, "machine: %s, %d CPUs (runtime.NumCPU), %s, load %s\n", host, runtime.NumCPU(), MemTotal(), LoadAvg())
}
