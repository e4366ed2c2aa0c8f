package progress

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestStatusOnATerminal(t *testing.T) {
	var b bytes.Buffer
	clock := time.Unix(0, 0)
	s := &Status{out: &b, w: &b, now: func() time.Time { return clock }}
	log := s.Writer()
	io.WriteString(log, "before\n")
	s.Set(Steps("starting", 2, 5, "kube-apiserver"))
	clock = clock.Add(1500 * time.Millisecond)
	io.WriteString(log, "a log line\n")
	s.Set("")
	io.WriteString(log, "after\n")
	want := "before\n" +
		"\r\x1b[Kstarting: 2/5, waiting for kube-apiserver  0s" +
		"\r\x1b[Ka log line\nstarting: 2/5, waiting for kube-apiserver  1.5s" +
		"\r\x1b[K" +
		"after\n"
	if b.String() != want {
		t.Errorf("on a terminal:\n got %q\nwant %q", b.String(), want)
	}
}

func TestStatusElsewhere(t *testing.T) {
	var b bytes.Buffer
	s := NewStatus(&b) // a buffer is not a terminal
	s.Set("starting: 1/2, waiting for x")
	io.WriteString(s.Writer(), "a log line\n")
	s.Set("")
	if b.String() != "a log line\n" {
		t.Errorf("off a terminal: %q, want the log line alone", b.String())
	}
}
