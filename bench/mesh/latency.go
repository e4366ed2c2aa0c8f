package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// The protocols of the latency step.
const (
	protoHTTP1 = "http1" // GET /hostname, HTTP/1.1 keep-alive
	protoH2C   = "h2c"   // the same over HTTP/2 without TLS
	protoGRPC  = "grpc"  // grpc.health.v1.Health/Check
)

var protoNames = map[string]string{protoHTTP1: "HTTP/1.1", protoH2C: "h2c", protoGRPC: "gRPC"}

// loadResult is the JSON line of `testhost http-load`.
type loadResult struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	P50        int64   `json:"p50_us"`
	P90        int64   `json:"p90_us"`
	P99        int64   `json:"p99_us"`
	Mean       int64   `json:"mean_us"`
	RPS        float64 `json:"rps"`
	FirstError string  `json:"first_error"`
	TimedOut   bool    `json:"timed_out"`
}

// target is one path a request takes from the client pod on skiff-n1.
type target struct {
	name      string
	crossNode bool
	// host is the address to aim at in a namespace (the pod's IP or the
	// Service's ClusterIP), port its HTTP port.
	host func(ns string) string
	port int
	// protocols limits the target to some protocols (nil: all).
	protocols []string
}

func targets(w *workload) []target {
	return []target{
		{name: "pod IP, across nodes", crossNode: true, host: func(ns string) string { return w.serverIP[ns][2] }, port: httpPort},
		{name: "pod IP, same node", host: func(ns string) string { return w.serverIP[ns][1] }, port: httpPort},
		{name: "ClusterIP, across nodes", crossNode: true, host: func(ns string) string { return w.clusterIP[ns] }, port: 80, protocols: []string{protoHTTP1}},
	}
}

// loadArgs are http-load's arguments for proto against t in namespace ns.
func (t target) loadArgs(ns, proto string) []string {
	switch proto {
	case protoGRPC:
		return []string{"--grpc-health", fmt.Sprintf("%s:%d", t.host(ns), grpcPort)}
	case protoH2C:
		return []string{"--url", fmt.Sprintf("http://%s:%d/hostname", t.host(ns), t.port), "--h2c"}
	default:
		return []string{"--url", fmt.Sprintf("http://%s:%d/hostname", t.host(ns), t.port)}
	}
}

// latencyRow is one target and protocol: each round's result per
// namespace.
type latencyRow struct {
	target  target
	proto   string
	off, on []loadResult
}

// httpLoad runs testhost http-load in namespace ns's client pod. The
// result is returned whenever the tool printed one, with an error too when
// a request failed.
func httpLoad(ctx context.Context, c *cluster, ns string, args ...string) (loadResult, error) {
	cmd := append([]string{"exec", "-n", ns, "client", "--", "/testhost", "http-load", "--timeout", "5m"}, args...)
	out, err := c.kubectl(ctx, 6*time.Minute, cmd...)
	var res loadResult
	out = bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:] // the JSON line is the last
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		if err == nil {
			err = fmt.Errorf("http-load printed %q: %w", out, jerr)
		}
		return res, err
	}
	if res.Errors > 0 || res.TimedOut {
		return res, fmt.Errorf("http-load in %s %v: %d of %d requests failed (first: %s), timed out: %t", ns, args, res.Errors, res.Requests, res.FirstError, res.TimedOut)
	}
	return res, nil
}

// latency measures every target and protocol, mesh-off then mesh-on,
// o.rounds times, and returns the rows taken.
func latency(ctx context.Context, c *cluster, o options, w *workload) ([]*latencyRow, error) {
	fmt.Printf("\n## latency: %d rounds of %d requests (after %d warm-ups), %d worker(s), mesh-off then mesh-on\n", o.rounds, o.requests, o.warmup, o.concurrency)
	var rows []*latencyRow
	for _, t := range targets(w) {
		for _, proto := range o.protocols {
			if t.protocols != nil && !slices.Contains(t.protocols, proto) {
				continue
			}
			rows = append(rows, &latencyRow{target: t, proto: proto})
		}
	}
	// One request each first, until it answers: the ClusterIP waits for
	// kube-proxy's and the proxy's view of the Service. netexec may not
	// speak h2c: then its rows are dropped, saying why.
	kept := rows[:0]
	for _, r := range rows {
		limit := time.Minute
		if r.proto == protoH2C {
			limit = 10 * time.Second // after HTTP/1.1 to the same target answered
		}
		err := poll(ctx, limit, fmt.Sprintf("first %s request to %s", protoNames[r.proto], r.target.name), func() (bool, error) {
			for _, ns := range []string{nsOff, nsOn} {
				if _, err := httpLoad(ctx, c, ns, append(r.target.loadArgs(ns, r.proto), "--requests", "1")...); err != nil {
					return false, err
				}
			}
			return true, nil
		})
		if err != nil && r.proto == protoH2C {
			fmt.Printf("  h2c to %s skipped: %v\n", r.target.name, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		kept = append(kept, r)
	}
	rows = kept
	args := []string{"--requests", strconv.Itoa(o.requests), "--warmup", strconv.Itoa(o.warmup), "--concurrency", strconv.Itoa(o.concurrency)}
	for round := 1; round <= o.rounds; round++ {
		for _, r := range rows {
			for _, ns := range []string{nsOff, nsOn} {
				res, err := httpLoad(ctx, c, ns, append(r.target.loadArgs(ns, r.proto), args...)...)
				if err != nil && res.Requests == res.Errors { // nothing answered: no figure
					return rows, err
				}
				if err != nil {
					fmt.Println("  warning:", err)
				}
				if ns == nsOff {
					r.off = append(r.off, res)
				} else {
					r.on = append(r.on, res)
				}
				fmt.Printf("  round %d  %-24s %-8s %-8s p50 %s  p99 %s  %.0f req/s  %d errors\n", round, r.target.name, protoNames[r.proto], ns,
					us(res.P50), us(res.P99), res.RPS, res.Errors)
			}
		}
	}
	return rows, nil
}

// summary is the median over rounds of each round's p50 and p99, and the
// requests and errors summed.
type summary struct {
	p50, p99         time.Duration
	requests, errors int
}

func summarize(runs []loadResult) summary {
	var s summary
	var p50, p99 []time.Duration
	for _, r := range runs {
		p50 = append(p50, time.Duration(r.P50)*time.Microsecond)
		p99 = append(p99, time.Duration(r.P99)*time.Microsecond)
		s.requests += r.Requests
		s.errors += r.Errors
	}
	s.p50, s.p99 = benchkit.Median(p50), benchkit.Median(p99)
	return s
}

// printLatency writes the latency table.
func printLatency(w io.Writer, rows []*latencyRow) {
	fmt.Fprintf(w, "\n## Added latency (median over rounds of each run's percentile)\n\n")
	fmt.Fprintf(w, "| path | protocol | mesh off p50 / p99 | mesh on p50 / p99 | added p50 / p99 | on/off p50 | requests off / on (errors) |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if len(r.off) == 0 || len(r.on) == 0 {
			continue
		}
		off, on := summarize(r.off), summarize(r.on)
		ratio := "-"
		if off.p50 > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(on.p50)/float64(off.p50))
		}
		fmt.Fprintf(w, "| %s | %s | %s / %s | %s / %s | %s / %s | %s | %d / %d (%d / %d) |\n",
			r.target.name, protoNames[r.proto],
			ms(off.p50), ms(off.p99), ms(on.p50), ms(on.p99),
			signedMs(on.p50-off.p50), signedMs(on.p99-off.p99), ratio,
			off.requests, on.requests, off.errors, on.errors)
	}
}

// addLatencyTargets records the target, +1 ms median across nodes,
// for each protocol measured between pod IPs.
func addLatencyTargets(report *benchkit.Report, rows []*latencyRow) {
	for _, r := range rows {
		if !r.target.crossNode || len(r.off) == 0 || len(r.on) == 0 {
			continue
		}
		off, on := summarize(r.off), summarize(r.on)
		added := on.p50 - off.p50
		report.AddTarget(fmt.Sprintf("added p50, %s, %s", r.target.name, protoNames[r.proto]),
			fmt.Sprintf("%s (p99 %s)", signedMs(added), signedMs(on.p99-off.p99)), "< +1 ms", benchkit.Verdict(added < time.Millisecond))
	}
}

// carried checks, from skiff-n1's proxy metrics, that the mesh-on client's
// connections went through the mesh and the mesh-off client's did not: the
// comparison means nothing otherwise.
func carried(ctx context.Context, report *benchkit.Report) error {
	src, err := meshMetrics(ctx, 1)
	if err != nil {
		return fmt.Errorf("mesh metrics of %s: %w", nodeName(1), err)
	}
	dst, err := meshMetrics(ctx, 2)
	if err != nil {
		return fmt.Errorf("mesh metrics of %s: %w", nodeName(2), err)
	}
	on := src.Sum("istio_tcp_connections_opened_total", `reporter="source"`, `source_workload_namespace="`+nsOn+`"`)
	off := src.Sum("istio_tcp_connections_opened_total", `source_workload_namespace="`+nsOff+`"`)
	// The destination counts HTTP/1.x connections by their requests, other
	// TCP (gRPC here) by connection.
	mtls := []string{`reporter="destination"`, `connection_security_policy="mutual_tls"`, `destination_workload_namespace="` + nsOn + `"`}
	dstConns, dstRequests := dst.Sum("istio_tcp_connections_opened_total", mtls...), dst.Sum("istio_requests_total", mtls...)
	report.Add("connections skiff-n1's proxy opened for mesh-on / mesh-off",
		fmt.Sprintf("%.0f / %.0f", on, off))
	report.Add("mutual-TLS traffic skiff-n2's proxy received for mesh-on",
		fmt.Sprintf("%.0f TCP connections, %.0f HTTP requests", dstConns, dstRequests))
	if on == 0 || off > 0 || dstConns+dstRequests == 0 {
		return errors.New("the mesh-on traffic did not go through the mesh (or the mesh-off traffic did): the comparison is void")
	}
	return nil
}

func us(v int64) string { return ms(time.Duration(v) * time.Microsecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func signedMs(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
}
