package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A stand-in for a containerd left running by an earlier agent: this test
// binary, run with SKIFF_TEST_LISTEN, listens on that socket until it is
// signalled.
func TestMain(m *testing.M) {
	if path := os.Getenv("SKIFF_TEST_LISTEN"); path != "" {
		l, err := net.Listen("unix", path)
		if err != nil {
			os.Exit(3)
		}
		for {
			conn, err := l.Accept()
			if err != nil {
				os.Exit(4)
			}
			conn.Close()
		}
	}
	os.Exit(m.Run())
}

// leftRunning starts the stand-in on c's socket and returns its process
// and a channel closed when it has exited (and been reaped).
func leftRunning(t *testing.T, c *containerd) (*os.Process, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SKIFF_TEST_LISTEN="+c.socket())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for i := 0; !c.alive(); i++ {
		if i == 100 {
			t.Fatal("the stand-in did not listen within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd.Process, exited
}

func TestReplaceOther(t *testing.T) {
	c := &containerd{dir: t.TempDir(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// Nothing on the socket: nothing to replace, and no error.
	if _, err := c.peerPID(); !errors.Is(err, errNoPeer) {
		t.Fatalf("peerPID with no listener: %v, want errNoPeer", err)
	}
	if err := c.replaceOther(context.Background(), os.Args[0]); err != nil {
		t.Fatalf("replaceOther with no listener: %v", err)
	}
	proc, exited := leftRunning(t, c)

	pid, err := c.peerPID()
	if err != nil || pid != proc.Pid {
		t.Fatalf("peerPID = %d, %v; want %d", pid, err, proc.Pid)
	}

	// The same program as the agent would run: reused, left alone.
	if err := c.replaceOther(context.Background(), os.Args[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Fatal("a containerd running this agent's program was stopped")
	case <-time.After(200 * time.Millisecond):
	}

	// Another program (an older skiff's, a system package's): stopped,
	// and gone by the time replaceOther returns.
	other := filepath.Join(t.TempDir(), "containerd")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.replaceOther(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the other program's containerd is still running")
	}
	if err := syscall.Kill(proc.Pid, 0); err == nil {
		t.Error("its process still exists")
	}
}
