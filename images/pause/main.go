// Command pause is the process that holds a pod sandbox's namespaces open.
//
// It is built as a static binary and shipped as the only file of the
// localhost/skiff/pause image (see internal/images). It blocks until it
// receives SIGINT or SIGTERM and then exits 0. Running as PID 1 of the pod's
// PID namespace, it reaps every child that gets reparented to it so zombies
// never accumulate.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1, orphaned children will not be reaped here")
	}
	os.Exit(wait(sigs, reap))
}

// wait handles signals until one asks the process to stop, and returns the
// exit code: SIGCHLD runs reap, SIGINT and SIGTERM end the wait with 0.
func wait(sigs <-chan os.Signal, reap func()) int {
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		return 0
	}
	return 0
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
