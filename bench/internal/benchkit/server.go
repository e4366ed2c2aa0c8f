package benchkit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/internal/freeport"
)

// ServerOptions say how to start one `skiff server`.
type ServerOptions struct {
	// Binary is the skiff executable.
	Binary string
	// DataDir is created when missing and reused as it is otherwise (a
	// restart). The server's output goes to DataDir+".log", beside it.
	DataDir string
	// Port is the HTTPS port; 0 picks a free one (never 6443).
	Port int
	// Args are extra `skiff server` flags.
	Args []string
	// Env is extra environment for the server only, KEY=VALUE each
	// (GOGC, GOMEMLIMIT experiments).
	Env []string
}

// Server is a running `skiff server` subprocess.
type Server struct {
	DataDir string
	Port    int
	// URL is the API server's address on 127.0.0.1.
	URL string
	// Started is when the process was started.
	Started time.Time

	cmd  *exec.Cmd
	logf *os.File
	// done is closed by the goroutine that waits for the process;
	// waitErr is set before.
	done    chan struct{}
	waitErr error
}

// StartServer starts the server and returns at once; see WaitReady.
func StartServer(opts ServerOptions) (*Server, error) {
	if opts.Binary == "" || opts.DataDir == "" {
		return nil, errors.New("benchkit: ServerOptions.Binary and DataDir are required")
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(opts.DataDir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"server",
		"--data-dir", opts.DataDir,
		"--https-listen-port", strconv.Itoa(port),
		"--bind-address", "127.0.0.1",
	}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a stop reaches any children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &Server{
		DataDir: opts.DataDir,
		Port:    port,
		URL:     "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:     cmd,
		logf:    logf,
		done:    make(chan struct{}),
	}
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kubeconfig is the admin kubeconfig the server writes.
func (s *Server) Kubeconfig() string { return filepath.Join(s.DataDir, "kubeconfig.yaml") }

// WaitReady polls GET /readyz anonymously every 5 ms until it answers 200,
// and returns the time from process start to that answer.
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	hc := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the server's own fresh CA; only /readyz
			DisableKeepAlives: true,
		},
	}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(s.Started), nil
			}
		}
		select {
		case <-s.done:
			return 0, fmt.Errorf("server exited before ready (%v); see %s.log", s.waitErr, s.DataDir)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("server not ready within %s; see %s.log", timeout, s.DataDir)
}

// RSS is the resident memory of the server and all its descendants.
func (s *Server) RSS() (int64, error) { return TreeRSS(s.PID()) }

// Memory is RSS split into anonymous and file-backed pages.
func (s *Server) Memory() (Memory, error) { return TreeMemory(s.PID()) }

// Stop sends SIGTERM, waits up to 30 s, then kills the process group.
func (s *Server) Stop() error {
	defer s.logf.Close()
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-s.PID(), syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("server %d did not stop within 30s of SIGTERM; killed", s.PID())
}

// FreePort returns a port free now, below the ephemeral range (internal/freeport).
func FreePort() (int, error) { return freeport.Pick() }
