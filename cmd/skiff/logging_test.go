package main

import (
	"bytes"
	"testing"
)

// Upstream's informational lines and healthy-start noise are dropped, its
// errors shown; once the command is stopping, nothing of upstream's is shown
// unless verbose.
func TestKlogFilter(t *testing.T) {
	defer stopping.Store(false)
	const (
		info  = "I1207 10:05:48.794259   23383 server.go:1] \"serving\"\n"
		noise = "E1207 10:05:48.794259   23383 x.go:1] \"Failed to set rlimit on max file handles\"\n"
		fault = "E1207 10:05:48.794259   23383 controllermanager.go:413] \"leaderelection lost/stopped\"\n"
	)
	write := func(verbose bool, lines ...string) string {
		var b bytes.Buffer
		f := &klogFilter{w: &b, verbose: verbose}
		for _, l := range lines {
			if n, err := f.Write([]byte(l)); n != len(l) || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		return b.String()
	}
	if got := write(false, info, noise, fault); got != fault {
		t.Errorf("running: %q, want only the error", got)
	}
	if got := write(true, info, fault); got != info+fault {
		t.Errorf("running, verbose: %q, want every line", got)
	}
	stopping.Store(true)
	if got := write(false, info, fault); got != "" {
		t.Errorf("stopping: %q, want nothing", got)
	}
	if got := write(true, fault); got != fault {
		t.Errorf("stopping, verbose: %q, want the line", got)
	}
}
