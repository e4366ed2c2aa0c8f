package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Bounds of http-load: a run never sends more than maxLoadRequests requests
// nor keeps more than maxLoadConcurrency workers, and each request gives up
// after loadRequestTimeout.
const (
	maxLoadRequests    = 1_000_000
	maxLoadConcurrency = 1000
	loadRequestTimeout = 10 * time.Second
)

// loadConfig is http-load's command line.
type loadConfig struct {
	url         string // HTTP target; or
	grpcHealth  string // HOST:PORT of a grpc.health.v1.Health service
	requests    int
	concurrency int
	warmup      int
	keepalive   bool
	h2c         bool
	rate        float64 // requests per second over all workers; 0: as fast as they go
	timeout     time.Duration
}

// loadResult is the JSON line http-load prints. Latencies are of the
// requests that succeeded, in microseconds, nearest-rank percentiles.
type loadResult struct {
	Requests int     `json:"requests"` // requests completed, failed ones included
	Errors   int     `json:"errors"`
	P50      int64   `json:"p50_us"`
	P90      int64   `json:"p90_us"`
	P99      int64   `json:"p99_us"`
	Mean     int64   `json:"mean_us"`
	RPS      float64 `json:"rps"` // Requests over the run's wall time
	// FirstError is the first failure's text; TimedOut says the run ended
	// (--timeout or a signal) before every request was sent.
	FirstError string `json:"first_error,omitempty"`
	TimedOut   bool   `json:"timed_out,omitempty"`
}

// httpLoad sends --requests requests to --url (GET, HTTP/1.1 with
// keep-alive, or h2c with --h2c) or, with --grpc-health, health checks to a
// gRPC server, from --concurrency workers, optionally paced to --rate
// requests per second in total, and prints one JSON line (loadResult). It
// exits 1, after printing, when a request failed or --timeout ended the
// run early. --warmup requests go first and are not counted.
func httpLoad(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("http-load")
	var c loadConfig
	fs.StringVar(&c.url, "url", "", "URL to GET (http:// only)")
	fs.StringVar(&c.grpcHealth, "grpc-health", "", "HOST:PORT: send grpc.health.v1.Health/Check instead of GETs")
	fs.IntVar(&c.requests, "requests", 1000, fmt.Sprintf("requests to send (1..%d)", maxLoadRequests))
	fs.IntVar(&c.concurrency, "concurrency", 1, fmt.Sprintf("workers, each sending one request at a time (1..%d)", maxLoadConcurrency))
	fs.IntVar(&c.warmup, "warmup", 0, "requests sent first and not counted")
	fs.BoolVar(&c.keepalive, "keepalive", true, "reuse HTTP/1.1 connections (false: a new connection per request)")
	fs.BoolVar(&c.h2c, "h2c", false, "HTTP/2 without TLS (prior knowledge), all workers on one connection")
	fs.Float64Var(&c.rate, "rate", 0, "requests per second over all workers (0: unpaced)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "end the run after this long, whatever is left unsent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.validate(); err != nil {
		return err
	}
	do, closeFn, err := c.requester()
	if err != nil {
		return err
	}
	defer closeFn()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.warmup > 0 {
		runLoad(ctx, c.warmup, c.concurrency, 0, do)
	}
	res := runLoad(ctx, c.requests, c.concurrency, c.rate, do)
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if res.Errors > 0 || res.TimedOut {
		return exitError{1}
	}
	return nil
}

func (c *loadConfig) validate() error {
	switch {
	case (c.url == "") == (c.grpcHealth == ""):
		return errors.New("exactly one of --url and --grpc-health is required")
	case c.requests < 1 || c.requests > maxLoadRequests:
		return fmt.Errorf("--requests %d: must be 1..%d", c.requests, maxLoadRequests)
	case c.concurrency < 1 || c.concurrency > maxLoadConcurrency:
		return fmt.Errorf("--concurrency %d: must be 1..%d", c.concurrency, maxLoadConcurrency)
	case c.warmup < 0 || c.warmup > maxLoadRequests:
		return fmt.Errorf("--warmup %d: must be 0..%d", c.warmup, maxLoadRequests)
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0):
		return fmt.Errorf("--rate %v: must be 0 (unpaced) or positive", c.rate)
	case c.timeout <= 0:
		return fmt.Errorf("--timeout %s: must be positive", c.timeout)
	case c.grpcHealth != "" && (c.h2c || !c.keepalive):
		return errors.New("--h2c and --keepalive=false apply to --url only (gRPC is HTTP/2 on one connection)")
	case c.h2c && !c.keepalive:
		return errors.New("--keepalive=false applies to HTTP/1.1 only (h2c multiplexes one connection)")
	}
	if c.url != "" {
		u, err := url.Parse(c.url)
		if err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		if u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("--url %q: want http://HOST[:PORT]/PATH", c.url)
		}
	}
	if c.grpcHealth != "" {
		if _, _, err := net.SplitHostPort(c.grpcHealth); err != nil {
			return fmt.Errorf("--grpc-health: %w", err)
		}
	}
	return nil
}

// requester builds the function that sends one request and says whether it
// succeeded, and what to close when the run is over.
func (c *loadConfig) requester() (do func(context.Context) error, closeFn func(), err error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if c.grpcHealth != "" {
		conn, err := grpc.NewClient("passthrough:///"+c.grpcHealth, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, err
		}
		client := healthpb.NewHealthClient(conn)
		return func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, loadRequestTimeout)
			defer cancel()
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("health status %s", s)
			}
			return nil
		}, func() { conn.Close() }, nil
	}

	var rt http.RoundTripper
	if c.h2c {
		rt = &http2.Transport{
			AllowHTTP: true,
			// AllowHTTP still dials through DialTLSContext: dial plain TCP.
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
		}
	} else {
		rt = &http.Transport{
			Proxy:               nil, // the target, never an environment's proxy
			DialContext:         dialer.DialContext,
			DisableKeepAlives:   !c.keepalive,
			DisableCompression:  true,
			MaxIdleConnsPerHost: c.concurrency,
			// One connection per worker: without the bound, a request
			// issued just before the previous one's connection is back in
			// the idle pool dials another.
			MaxConnsPerHost: c.concurrency,
		}
	}
	hc := &http.Client{Transport: rt, Timeout: loadRequestTimeout}
	target := c.url
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", target, resp.Status)
		}
		return nil
	}, hc.CloseIdleConnections, nil
}

// runLoad calls do total times from workers goroutines, paced to rate calls
// a second over all of them when rate > 0, until done or ctx ends, and
// summarises the calls' durations.
func runLoad(ctx context.Context, total, workers int, rate float64, do func(context.Context) error) loadResult {
	workers = min(workers, total)
	next := unpaced(total)
	if rate > 0 {
		next = paced(ctx, total, rate)
	}
	type tally struct {
		took     []time.Duration
		errors   int
		firstErr error
	}
	tallies := make([]tally, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			for ctx.Err() == nil && next() {
				began := time.Now()
				err := do(ctx)
				took := time.Since(began)
				if err != nil {
					if ctx.Err() != nil {
						return // cut short by the timeout: not the target's failure
					}
					t.errors++
					if t.firstErr == nil {
						t.firstErr = err
					}
					continue
				}
				t.took = append(t.took, took)
			}
		}(&tallies[w])
	}
	wg.Wait()
	elapsed := time.Since(start)

	var res loadResult
	var took []time.Duration
	for _, t := range tallies {
		took = append(took, t.took...)
		res.Errors += t.errors
		if t.firstErr != nil && res.FirstError == "" {
			res.FirstError = t.firstErr.Error()
		}
	}
	res.Requests = len(took) + res.Errors
	res.TimedOut = res.Requests < total
	if elapsed > 0 {
		res.RPS = math.Round(float64(res.Requests)/elapsed.Seconds()*10) / 10
	}
	if len(took) > 0 {
		slices.Sort(took)
		var sum time.Duration
		for _, d := range took {
			sum += d
		}
		res.P50 = percentile(took, 50).Microseconds()
		res.P90 = percentile(took, 90).Microseconds()
		res.P99 = percentile(took, 99).Microseconds()
		res.Mean = (sum / time.Duration(len(took))).Microseconds()
	}
	return res
}

// unpaced hands out total turns as fast as they are asked for.
func unpaced(total int) func() bool {
	var issued atomic.Int64
	return func() bool { return issued.Add(1) <= int64(total) }
}

// paced hands out total turns, the i-th no earlier than i/rate seconds
// after the first; a worker that falls behind catches up at once. The
// pacing goroutine ends after the last turn or when ctx ends.
func paced(ctx context.Context, total int, rate float64) func() bool {
	turns := make(chan struct{}) // closed by the pacing goroutine when it ends
	go func() {
		defer close(turns)
		start := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := range total {
			if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case turns <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() bool {
		_, ok := <-turns
		return ok
	}
}

// percentile is the nearest-rank p-th percentile of sorted, which is
// sorted ascending and not empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
