package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Status is one line at the bottom of a terminal saying what a process is
// waiting for ("starting skiff server: 7/21, waiting for kube-apiserver"),
// kept below its log lines: a write through Writer clears the line, writes,
// and draws it again. On anything but a terminal it draws nothing and
// Writer writes straight through.
type Status struct {
	out  io.Writer // the terminal; nil when w is not one
	w    io.Writer
	now  func() time.Time
	mu   sync.Mutex // guards the following, and serializes writes to w
	text string     // "" when no line is shown
	set  time.Time  // when text was set
}

// NewStatus returns a Status drawing on w if w is a terminal.
func NewStatus(w io.Writer) *Status {
	s := &Status{w: w, now: time.Now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.out = w
	}
	return s
}

// Writer is where the process's log lines go: through it they appear
// above the status line.
func (s *Status) Writer() io.Writer { return statusWriter{s} }

type statusWriter struct{ s *Status }

func (sw statusWriter) Write(p []byte) (int, error) {
	s := sw.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil || s.text == "" {
		return s.w.Write(p)
	}
	fmt.Fprint(s.w, "\r\x1b[K")
	n, err := s.w.Write(p)
	s.draw()
	return n, err
}

// Set shows text as the status line (timed from now), or clears the line
// for "".
func (s *Status) Set(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return
	}
	if text == "" {
		if s.text != "" {
			fmt.Fprint(s.w, "\r\x1b[K")
		}
		s.text = ""
		return
	}
	s.text, s.set = text, s.now()
	fmt.Fprint(s.w, "\r\x1b[K")
	s.draw()
}

// draw writes the line, with the time since it was set; s.mu is held.
func (s *Status) draw() {
	fmt.Fprintf(s.w, "%s  %s", s.text, s.now().Sub(s.set).Round(100*time.Millisecond))
}

// Steps is the text of a start-up's status: "LABEL: DONE/TOTAL, waiting for
// NAME".
func Steps(label string, done, total int, waiting string) string {
	return fmt.Sprintf("%s: %d/%d, waiting for %s", label, done, total, waiting)
}
