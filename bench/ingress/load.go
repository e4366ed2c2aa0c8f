package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// scenario is one kind of load.
type scenario struct {
	name  string
	tls   bool
	close bool // a new connection per request (HTTP/1.1 only)
	h2    bool // HTTP/2 over TLS with h2load; else HTTP/1.1 with wrk
}

var allScenarios = []scenario{
	{name: "h1-keepalive"},
	{name: "h1-close", close: true},
	{name: "h1-tls-keepalive", tls: true},
	{name: "h1-tls-close", tls: true, close: true},
	{name: "h2-tls", tls: true, h2: true},
}

func parseScenarios(s string) ([]scenario, error) {
	var out []scenario
next:
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		for _, sc := range allScenarios {
			if sc.name == name {
				out = append(out, sc)
				continue next
			}
		}
		var names []string
		for _, sc := range allScenarios {
			names = append(names, sc.name)
		}
		return nil, fmt.Errorf("unknown scenario %q (want some of %s)", name, strings.Join(names, ", "))
	}
	return out, nil
}

// describe says what the scenario's load is, in words and flags.
func (sc scenario) describe(o options) string {
	var s string
	switch {
	case sc.h2:
		s = fmt.Sprintf("HTTP/2 over TLS, h2load -t %d -c %d -m %d", o.threads, o.h2Clients, o.h2Streams)
	default:
		s = "HTTP/1.1"
		if sc.tls {
			s += " over TLS"
		} else {
			s += ", plain"
		}
		if sc.close {
			s += ", a new connection per request (Connection: close)"
		} else {
			s += ", keep-alive"
		}
		s += fmt.Sprintf(", wrk -t %d -c %d", o.threads, o.conns)
	}
	return fmt.Sprintf("%s; %s after %s warm-up", s, o.duration, o.warmup)
}

// result is one peer's figures under one scenario.
type result struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	// errors are socket errors, timeouts and answers other than 2xx/3xx
	// (wrk), or requests not succeeded (h2load).
	errors int64
	rss    int64 // the proxy's process tree right after the load
}

func (r result) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %-9s p99 %-9s %d requests, %d errors, RSS %s",
		r.rps, benchkit.Ms(r.p50), benchkit.Ms(r.p99), r.requests, r.errors, benchkit.MiB(r.rss))
}

// measure runs the scenario's warm-up and then its measured load against
// p, and reads p's memory right after.
func (b *bench) measure(ctx context.Context, sc scenario, p *peer) (result, error) {
	if b.opts.warmup > 0 {
		if _, err := b.load(ctx, sc, p, b.opts.warmup, "warmup"); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	r, err := b.load(ctx, sc, p, b.opts.duration, "run")
	if err != nil {
		return result{}, err
	}
	r.rss = p.rss()
	if err := p.proc.exited(); err != nil {
		return result{}, err
	}
	return r, nil
}

// load runs the scenario's load generator against p for d.
func (b *bench) load(ctx context.Context, sc scenario, p *peer, d time.Duration, tag string) (result, error) {
	// Whole seconds: wrk takes no fractions.
	secs := max(1, int((d+time.Second/2)/time.Second))
	prefix := filepath.Join(b.root, fmt.Sprintf("%s-%s-%s", sc.name, p.name, tag))
	var argv []string
	logFile := prefix + ".h2load.tsv"
	if sc.h2 {
		// h2load dials 127.0.0.1 but names bench.local in SNI and
		// :authority; its log file has every request's duration, from
		// which the percentiles come.
		argv = []string{"h2load", "-t", strconv.Itoa(b.opts.threads), "-c", strconv.Itoa(b.opts.h2Clients),
			"-m", strconv.Itoa(b.opts.h2Streams), "-D", strconv.Itoa(secs),
			"--connect-to", hostPort(p.httpsPort), "--log-file", logFile,
			fmt.Sprintf("https://%s:%d/", benchHost, p.httpsPort)}
	} else {
		// wrk dials the URL's host and sends it as SNI (127.0.0.1); the
		// route is chosen by the Host header.
		argv = []string{"wrk", "-t", strconv.Itoa(b.opts.threads), "-c", strconv.Itoa(b.opts.conns),
			"-d", strconv.Itoa(secs) + "s", "--latency", "-H", "Host: " + benchHost}
		if sc.close {
			argv = append(argv, "-H", "Connection: close")
		}
		argv = append(argv, p.url(sc.tls))
	}
	lctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(lctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(prefix+".out", out, 0o644)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	if sc.h2 {
		r, err := parseH2load(string(out))
		if err != nil {
			return result{}, fmt.Errorf("h2load output (%s.out): %w", prefix, err)
		}
		if r.p50, r.p99, err = h2loadPercentiles(logFile); err != nil {
			return result{}, fmt.Errorf("h2load log: %w", err)
		}
		os.Remove(logFile) // large; the figures are taken
		return r, nil
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return result{}, fmt.Errorf("wrk output (%s.out): %w", prefix, err)
	}
	return r, nil
}

var (
	wrkRPS       = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkRequests  = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkPercent   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkSocketErr = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx    = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk --latency's report.
func parseWrk(out string) (result, error) {
	var r result
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec line")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no 50%% and 99%% lines in the latency distribution")
	}
	if m := wrkSocketErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	return r, nil
}

var (
	h2RPS      = regexp.MustCompile(`(?m)^finished in [^,]+, ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads h2load's report: requests per second and how many
// requests were done and succeeded.
func parseH2load(out string) (result, error) {
	var r result
	m := h2RPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no 'finished in' line")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	m = h2Requests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no 'requests:' line")
	}
	n := make([]int64, len(m))
	for i, s := range m[1:] {
		n[i+1], _ = strconv.ParseInt(s, 10, 64)
	}
	done, succeeded, failed, timeout := n[3], n[4], n[5], n[7]
	r.requests = done
	r.errors = max(failed, done-succeeded) + timeout
	if m := h2Status.FindStringSubmatch(out); m != nil {
		var bad int64
		for _, s := range m[3:] { // 4xx and 5xx
			v, _ := strconv.ParseInt(s, 10, 64)
			bad += v
		}
		r.errors = max(r.errors, bad)
	}
	return r, nil
}

// h2loadPercentiles reads the p50 and p99 of the successful (2xx)
// requests in an h2load --log-file (start µs, status, duration µs).
func h2loadPercentiles(path string) (p50, p99 time.Duration, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	d, err := readH2loadLog(f)
	if err != nil {
		return 0, 0, err
	}
	if len(d) == 0 {
		return 0, 0, fmt.Errorf("%s: no successful requests", path)
	}
	s := benchkit.Summarize(d)
	return s.P50, s.P99, nil
}

func readH2loadLog(r io.Reader) ([]time.Duration, error) {
	var d []time.Duration
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 3 {
			continue
		}
		status, err1 := strconv.Atoi(f[1])
		us, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		if status >= 200 && status < 300 {
			d = append(d, time.Duration(us)*time.Microsecond)
		}
	}
	return d, sc.Err()
}
