package e2eutil

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// StandaloneKubectlDir holds the standalone kubectl builds (kubectl.1.27 …).
const StandaloneKubectlDir = "/usr/lib/google-cloud-sdk/bin"

// StandaloneKubectlVersions are the standalone versions the tests drive
// besides the embedded one: the oldest and newest on the machine's list.
var StandaloneKubectlVersions = []string{"1.27", "1.33"}

// Kubectl is one kubectl binary: the embedded `skiff kubectl` or a standalone one.
type Kubectl struct {
	// Name identifies it in test names: "embedded", "1.27", "1.33".
	Name     string
	argv     []string
	cacheDir string
}

// Kubectls lists the kubectl binaries to test: the embedded one always, and
// each standalone version that is installed (a missing one is logged and
// skipped).
func Kubectls(t testing.TB) []Kubectl {
	t.Helper()
	ks := []Kubectl{{Name: "embedded", argv: []string{Binary(t), "kubectl"}}}
	for _, v := range StandaloneKubectlVersions {
		p := filepath.Join(StandaloneKubectlDir, "kubectl."+v)
		if _, err := os.Stat(p); err != nil {
			t.Logf("kubectl %s not found at %s; skipping that version", v, p)
			continue
		}
		ks = append(ks, Kubectl{Name: v, argv: []string{p}})
	}
	for i := range ks {
		// A discovery cache per binary and test, so versions do not share one.
		ks[i].cacheDir = filepath.Join(t.TempDir(), "kube-cache")
	}
	return ks
}

// Result is a finished kubectl run.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	// Code is the exit code (-1 if it did not run or was killed).
	Code int
}

// Command builds the kubectl command for args against kubeconfig.
func (k Kubectl) Command(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, k.argv...), "--kubeconfig", kubeconfig, "--cache-dir", k.cacheDir)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	return cmd
}

// Run runs kubectl with stdin (may be empty) and returns its output; it is
// killed after a minute.
func (k Kubectl) Run(t testing.TB, kubeconfig, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := k.Command(ctx, kubeconfig, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Code: -1}
	var exit *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		t.Fatalf("kubectl %s %s: %v", k.Name, strings.Join(args, " "), err)
	}
	return r
}

// Watch is a running long-lived kubectl (e.g. `get -w`) whose stdout lines
// are delivered on Lines.
type Watch struct {
	// Lines carries stdout lines; it is closed when kubectl exits.
	Lines  <-chan string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	once   sync.Once
	stderr *strings.Builder
	// stopped is closed by Stop, so the reader gives up a blocked send.
	stopped chan struct{}
}

// Start starts a long-running kubectl; it is killed at the end of the test
// at the latest.
func (k Kubectl) Start(t testing.TB, kubeconfig string, args ...string) *Watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := k.Command(ctx, kubeconfig, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &Watch{cmd: cmd, cancel: cancel, stderr: &strings.Builder{}, stopped: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	w.Lines = lines
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-w.stopped:
				return
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(w.Stop)
	return w
}

// Next returns the next stdout line that contains substr, or false if none
// came within d (or kubectl exited). Lines it skips are returned as seen.
func (w *Watch) Next(substr string, d time.Duration) (line string, seen []string, ok bool) {
	timeout := time.After(d)
	for {
		select {
		case l, open := <-w.Lines:
			if !open {
				return "", seen, false
			}
			seen = append(seen, l)
			if strings.Contains(l, substr) {
				return l, seen, true
			}
		case <-timeout:
			return "", seen, false
		}
	}
}

// Stderr is what the watch wrote to stderr so far (only safe after Stop).
func (w *Watch) Stderr() string { return w.stderr.String() }

// Stop kills kubectl and waits for it.
func (w *Watch) Stop() {
	w.once.Do(func() {
		close(w.stopped)
		w.cancel()
		_ = w.cmd.Wait()
	})
}
