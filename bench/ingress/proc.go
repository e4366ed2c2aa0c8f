package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the benchmark started: a proxy or the backends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	// done is closed by the goroutine that waits for the process; err is
	// set before.
	done chan struct{}
	err  error
}

// startProc starts argv in a process group of its own, so that stop
// reaches its workers too, with its output in logPath.
func startProc(name string, argv, env []string, logPath string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, waits up to 10 s, then kills
// the group.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// exited is an error saying the process has ended, with the end of its
// log; nil while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, logTail(p.log))
	default:
		return nil
	}
}

// logTail is the last lines of a log, on one line, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return fmt.Sprintf("%s (log %s)", strings.Join(lines, " | "), path)
}

// waitServing polls url with Host host every 50 ms until it answers 200
// with body want, for at most 20 s or until p exits.
func waitServing(ctx context.Context, p *proc, url, host string, want []byte) error {
	hc := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: host, InsecureSkipVerify: true}, // our own self-signed certificate
			DisableKeepAlives: true,
		},
	}
	defer hc.CloseIdleConnections()
	var last string
	for range 400 {
		if err := p.exited(); err != nil {
			return err
		}
		body, status, err := get(ctx, hc, url, host)
		switch {
		case err != nil:
			last = err.Error()
		case status != http.StatusOK || !bytes.Equal(body, want):
			last = fmt.Sprintf("answered %d %q", status, body)
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not serving %s (Host %s) within 20s: %s; log %s", p.name, url, host, last, p.log)
}

// get fetches url with Host host and returns the body and status.
func get(ctx context.Context, hc *http.Client, url, host string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Host = host
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return body, resp.StatusCode, err
}

// toolVersion is the first line a program prints asked for its version.
func toolVersion(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return name + " (version unknown)"
	}
	return strings.Join(strings.Fields(line), " ")
}

// sourceRevision says which commit of skiff is measured and whether
// internal/ingress differs from it in the working tree; "" outside a git
// checkout.
func sourceRevision() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--", "internal/ingress").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		s += ", internal/ingress modified in the working tree"
	}
	return s
}
