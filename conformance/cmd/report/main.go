// Command report summarises ginkgo JUnit reports of the Kubernetes
// conformance suite: passed, failed and skipped specs per SIG, and each
// failure with the first lines of its reason, as Markdown.
//
//	go run ./cmd/report [-o REPORT.md] junit_parallel.xml junit_serial.xml
package main

import (
	"cmp"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// junit is the part of a JUnit report ginkgo writes that the summary
// reads.
type junit struct {
	Suites []struct {
		Cases []struct {
			Name    string  `xml:"name,attr"`
			Status  string  `xml:"status,attr"`
			Time    float64 `xml:"time,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// result is one spec's outcome.
type result struct {
	name, sig, outcome, reason string
	seconds                    float64
}

var sigOf = regexp.MustCompile(`\[sig-([a-z0-9-]+)\]`)

func main() {
	out := flag.String("o", "", "write the report here (default: standard output)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: report [-o FILE] JUNIT.xml...")
		os.Exit(2)
	}
	var results []result
	for _, path := range flag.Args() {
		rs, err := read(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		results = append(results, rs...)
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	write(w, results)
}

// read is the [Conformance] specs of one JUnit report (ginkgo lists
// every spec of the binary, the ones its focus left out as skipped; those
// are dropped here).
func read(path string) ([]result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rs []result
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			if !strings.Contains(c.Name, "[Conformance]") {
				continue
			}
			r := result{name: c.Name, sig: "other", seconds: c.Time}
			if m := sigOf.FindStringSubmatch(c.Name); m != nil {
				r.sig = m[1]
			}
			switch {
			case c.Failure != nil:
				r.outcome, r.reason = "failed", firstLines(cmp.Or(c.Failure.Message, c.Failure.Text), 3)
			case c.Error != nil:
				r.outcome, r.reason = "failed", firstLines(cmp.Or(c.Error.Message, c.Error.Text), 3)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				r.outcome = "skipped"
			default:
				r.outcome = "passed"
			}
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// firstLines is s's first n non-empty lines, joined by " / ".
func firstLines(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
			if len(lines) == n {
				break
			}
		}
	}
	return strings.Join(lines, " / ")
}

func write(w io.Writer, results []result) {
	type tally struct{ passed, failed, skipped int }
	bySig := map[string]*tally{}
	var total tally
	for _, r := range results {
		t := bySig[r.sig]
		if t == nil {
			t = &tally{}
			bySig[r.sig] = t
		}
		switch r.outcome {
		case "passed":
			t.passed++
			total.passed++
		case "failed":
			t.failed++
			total.failed++
		default:
			t.skipped++
			total.skipped++
		}
	}
	fmt.Fprintf(w, "# Kubernetes conformance: %d passed, %d failed, %d skipped (%s)\n\n", total.passed, total.failed, total.skipped, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "| SIG | passed | failed | skipped |")
	fmt.Fprintln(w, "|---|---|---|---|")
	sigs := make([]string, 0, len(bySig))
	for s := range bySig {
		sigs = append(sigs, s)
	}
	slices.Sort(sigs)
	for _, s := range sigs {
		t := bySig[s]
		fmt.Fprintf(w, "| %s | %d | %d | %d |\n", s, t.passed, t.failed, t.skipped)
	}
	var failed []result
	for _, r := range results {
		if r.outcome == "failed" {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		return
	}
	slices.SortFunc(failed, func(a, b result) int { return cmp.Compare(a.name, b.name) })
	fmt.Fprintln(w, "\n## Failures")
	for _, r := range failed {
		fmt.Fprintf(w, "\n- %s (%.0f s)\n  %s\n", r.name, r.seconds, r.reason)
	}
}
