package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// peerLabel is a peer's name in tables.
var peerLabel = map[string]string{"skiff": "skiff", "haproxy": "HAProxy", "nginx": "NGINX", "caddy": "Caddy"}

// printTable writes one scenario's figures as a Markdown table, with
// skiff's throughput and p99 as ratios to each peer's.
func printTable(w io.Writer, sc scenario, o options, peers []string, res map[string]result) {
	fmt.Fprintf(w, "\n### %s\n\n%s\n\n", sc.name, sc.describe(o))
	fmt.Fprintln(w, "| peer | requests/s | p50 | p99 | errors | RSS after | skiff req/s ÷ peer's | skiff p99 ÷ peer's |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	sk, haveSkiff := res["skiff"]
	for _, name := range peers {
		r, ok := res[name]
		if !ok {
			continue
		}
		thr, lat := "", ""
		switch {
		case name == "skiff":
			thr, lat = "—", "—"
		case haveSkiff && r.rps > 0 && r.p99 > 0:
			thr = fmt.Sprintf("%.2f", sk.rps/r.rps)
			lat = fmt.Sprintf("%.2f", float64(sk.p99)/float64(r.p99))
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %d | %s | %s | %s |\n",
			peerLabel[name], r.rps, benchkit.Ms(r.p50), benchkit.Ms(r.p99), r.errors, benchkit.MiB(r.rss), thr, lat)
	}
}

// targets records the scenario's two targets: skiff's throughput at least
// NGINX's, and skiff's p99 below every other peer's. A target needing a
// peer that was not run is recorded without a verdict; skiff with errors
// misses both.
func (b *bench) targets(sc scenario, res map[string]result) {
	sk, ok := res["skiff"]
	if !ok {
		return
	}
	clean := sk.errors == 0
	note := ""
	if !clean {
		note = fmt.Sprintf("; skiff had %d errors", sk.errors)
	}
	what := sc.name + ": skiff throughput against NGINX"
	if ng, ok := res["nginx"]; ok && ng.rps > 0 {
		ratio := sk.rps / ng.rps
		b.report.AddTarget(what, fmt.Sprintf("%.2f× (%.0f vs %.0f req/s%s)", ratio, sk.rps, ng.rps, note),
			"≥ 1.00× NGINX", benchkit.Verdict(clean && ratio >= 1))
	} else {
		b.report.AddTarget(what, "NGINX not measured", "≥ 1.00× NGINX", "")
	}

	what = sc.name + ": skiff p99 against the others'"
	var others []string
	below := clean
	for _, name := range b.opts.peers {
		r, ok := res[name]
		if name == "skiff" || !ok {
			continue
		}
		others = append(others, fmt.Sprintf("%s %s", peerLabel[name], benchkit.Ms(r.p99)))
		below = below && sk.p99 < r.p99
	}
	if len(others) < 3 {
		b.report.AddTarget(what, fmt.Sprintf("%s vs %s (not all three peers measured)", benchkit.Ms(sk.p99), strings.Join(others, ", ")),
			"below all three", "")
		return
	}
	b.report.AddTarget(what, fmt.Sprintf("%s vs %s%s", benchkit.Ms(sk.p99), strings.Join(others, ", "), note),
		"below all three", benchkit.Verdict(below))
}
