package benchkit

import (
	"fmt"
	"io"
	"sync"
)

// Report collects figures as they are taken, echoes each one, and prints
// them as one Markdown table at the end.
type Report struct {
	mu   sync.Mutex // guards the following
	rows []reportRow
}

type reportRow struct {
	what, value, target, verdict string
}

// Add records a figure with no target.
func (r *Report) Add(what, value string) { r.AddTarget(what, value, "", "") }

// AddTarget records a figure with its target and a verdict (see Verdict).
func (r *Report) AddTarget(what, value, target, verdict string) {
	r.mu.Lock()
	r.rows = append(r.rows, reportRow{what, value, target, verdict})
	r.mu.Unlock()
	fmt.Printf("  %-58s %s\n", what, value)
}

// Print writes the table of every figure recorded so far.
func (r *Report) Print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "\n## Results\n\n| measurement | result | target | |\n|---|---|---|---|\n")
	for _, x := range r.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.what, x.value, x.target, x.verdict)
	}
}

// Verdict is "met" or "**missed**".
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
