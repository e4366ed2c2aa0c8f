package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// Upstream's informational lines and healthy-start noise are dropped, its
// errors shown; once the command is stopping, nothing of upstream's is shown
// unless verbose.
func TestKlogFilter(t *testing.T) {
	defer signalled.Store(nil)
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
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupt signal received"))
	signalled.Store(&ctx)
	failed := "E1207 10:05:49.798983   23383 run.go:72] \"command failed\" err=\"server: stop timed out\"\n"
	if got := write(false, info, fault, failed); got != failed {
		t.Errorf("stopping: %q, want only the command's final error", got)
	}
	if got := write(true, fault); got != fault {
		t.Errorf("stopping, verbose: %q, want the line", got)
	}
}

// A command that ends on its own (a configuration error) is not stopping,
// so its last lines, the final error among them, are shown; a signal makes
// it stopping.
func TestUntilSignal(t *testing.T) {
	defer signalled.Store(nil)
	ctx, stop := untilSignal()
	if stopping() {
		t.Fatal("stopping while the command runs")
	}
	stop()
	<-ctx.Done()
	if stopping() {
		t.Fatal("stopping after the command ended on its own")
	}
	ctx, stop = untilSignal()
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
	if !stopping() {
		t.Fatal("not stopping after SIGTERM")
	}
}
