package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	for _, stop := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(stop.String(), func(t *testing.T) {
			sigs := make(chan os.Signal, 3)
			sigs <- syscall.SIGCHLD
			sigs <- syscall.SIGCHLD
			sigs <- stop
			reaped := 0
			if code := wait(sigs, func() { reaped++ }); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			if reaped != 2 {
				t.Errorf("reaped %d times, want 2 (once per SIGCHLD)", reaped)
			}
		})
	}
}

func TestReapCollectsExitedChildren(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Until the child exits, reap finds nothing; afterwards the zombie goes
	// and its PID no longer exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reap()
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d was not reaped", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
