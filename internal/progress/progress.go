// Package progress shows how far a long operation has come on one line of
// a terminal, redrawn in place; on anything else (a pipe, a file, a CI
// log) it writes nothing, so scripts see only the command's own output.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// redraw is how often the line is drawn again at most.
const redraw = 100 * time.Millisecond

// Bar counts bytes of an operation of total bytes (0: unknown) and draws
// "LABEL  DONE / TOTAL  PERCENT" on a terminal.
type Bar struct {
	w     io.Writer // nil: not a terminal, draw nothing
	label string
	total int64

	mu    sync.Mutex
	done  int64
	drawn time.Time
	now   func() time.Time
}

// New returns a Bar drawing on w if w is a terminal.
func New(w io.Writer, label string, total int64) *Bar {
	b := &Bar{label: label, total: total, now: time.Now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.w = w
	}
	return b
}

// Reader counts what r reads on the bar.
func (b *Bar) Reader(r io.Reader) io.Reader { return &reader{r: r, b: b} }

// Add counts n more bytes done, drawing the line if it is due.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if b.w == nil || b.now().Sub(b.drawn) < redraw {
		return
	}
	b.drawn = b.now()
	fmt.Fprintf(b.w, "\r%s\x1b[K", Line(b.label, b.done, b.total))
}

// Done draws the final line and ends it.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w != nil {
		fmt.Fprintf(b.w, "\r%s\x1b[K\n", Line(b.label, b.done, b.total))
	}
}

// Line is the bar's text for done of total bytes (total 0: unknown).
func Line(label string, done, total int64) string {
	if total <= 0 {
		return fmt.Sprintf("%s  %s", label, Size(done))
	}
	return fmt.Sprintf("%s  %s / %s  %d%%", label, Size(done), Size(total), min(100, done*100/total))
}

// Size formats n bytes in binary units (KiB, MiB, GiB).
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.Add(int64(n))
	return n, err
}
