package apiserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestStartProgress: on a terminal (script(1) gives it one), `skiff server`
// keeps a line below its log saying what its start waits for, and clears
// it once ready; in a pipe (every other test's server) it writes no such
// line.
func TestStartProgress(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to give the server a terminal")
	}
	bin := e2eutil.Binary(t)
	dir := t.TempDir()
	typescript := filepath.Join(dir, "typescript")
	line := fmt.Sprintf("'%s' server --data-dir '%s' --https-listen-port %d --bind-address 127.0.0.1 --disable-agent",
		bin, filepath.Join(dir, "data"), e2eutil.FreePort(t))
	cmd := exec.Command("script", "-qfec", line, typescript)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		})
	}
	defer stop()
	var out string
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out, "skiff server is ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 2 minutes; the terminal shows:\n%s", out)
		}
		select {
		case err := <-exited:
			exited <- err // for stop
			data, _ := os.ReadFile(typescript)
			t.Fatalf("skiff server under script(1) exited before it was ready (%v); the terminal shows:\n%s", err, data)
		default:
		}
		time.Sleep(200 * time.Millisecond)
		data, _ := os.ReadFile(typescript)
		out = string(data)
	}
	for _, want := range []string{"\r\x1b[Kstarting skiff server: 0/", ", waiting for datastore", ", waiting for kube-apiserver"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal lacks %q:\n%q", want, out)
		}
	}
	// Once ready, the line is cleared: nothing after the last clear is
	// a status line.
	time.Sleep(time.Second)
	data, _ := os.ReadFile(typescript)
	out = string(data)
	if last := out[strings.LastIndex(out, "\r\x1b[K"):]; strings.Contains(last, "waiting for") {
		t.Errorf("the status line is still drawn after ready:\n%q", last)
	}

	// The same server again, its output into a pipe (after this one
	// stops: both would want the same DNS and metrics-server ports).
	stop()
	s := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	log, err := os.ReadFile(s.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "starting skiff server:") || strings.Contains(string(log), "\x1b[K") {
		t.Errorf("a server writing into a pipe drew its status line:\n%s", log)
	}
}
