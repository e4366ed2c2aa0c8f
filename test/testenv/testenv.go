// Package testenv starts a real skiff control plane (embedded etcd,
// kube-apiserver, controller manager, scheduler) inside the test process, on
// a temporary data directory and a free port, for integration tests that
// drive it through client-go. One server per test package: start it from
// TestMain with Main.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/internal/freeport"
	"github.com/skiffdev/skiff/internal/server"
)

// Env is a running in-process control plane.
type Env struct {
	DataDir    string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Server     *server.Server

	cancel context.CancelFunc
	done   chan error
}

// Options adjust the server an Env starts.
type Options struct {
	// Mutate changes the server's Config before it starts.
	Mutate func(*server.Config)
}

var current *Env

// Main starts one server for the package, runs its tests and stops it.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}) }
func Main(m *testing.M, opts Options) {
	env, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	current = env
	code := m.Run()
	env.Stop()
	os.RemoveAll(env.DataDir)
	os.Exit(code)
}

// Get returns the package's server started by Main.
func Get(t testing.TB) *Env {
	t.Helper()
	if current == nil {
		t.Fatal("testenv: no server; call testenv.Main from TestMain")
	}
	return current
}

// Start starts a server on a fresh data directory.
func Start(opts Options) (*Env, error) {
	dir, err := os.MkdirTemp("", "skiff-test-")
	if err != nil {
		return nil, err
	}
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	cfg := server.Config{
		DataDir:     dir,
		HTTPSPort:   port,
		BindAddress: "127.0.0.1",
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		cfg.Log = slog.Default()
	}
	if opts.Mutate != nil {
		opts.Mutate(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	env := &Env{DataDir: dir, Kubeconfig: s.Paths.Kubeconfig, Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { env.done <- s.Run(ctx) }()
	select {
	case <-s.Ready:
	case err := <-env.done:
		cancel()
		return nil, fmt.Errorf("server stopped before ready: %v", err)
	case <-time.After(3 * time.Minute):
		cancel()
		return nil, fmt.Errorf("server not ready within 3 minutes")
	}
	env.Config = rest.CopyConfig(s.AdminConfig)
	env.Config.QPS, env.Config.Burst = 500, 1000
	if env.Client, err = kubernetes.NewForConfig(env.Config); err != nil {
		return nil, err
	}
	if env.Dynamic, err = dynamic.NewForConfig(env.Config); err != nil {
		return nil, err
	}
	return env, nil
}

// Stop stops the server and waits (bounded) for it to return.
func (e *Env) Stop() {
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
	}
}

// Namespace creates a fresh namespace for one test and deletes it afterwards.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns, err := e.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	// The ServiceAccount admission plugin refuses pods until the
	// controller manager has made the namespace's default ServiceAccount.
	Eventually(t, time.Minute, "default ServiceAccount in "+ns.Name, func() (bool, error) {
		_, err := e.Client.CoreV1().ServiceAccounts(ns.Name).Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, err
	})
	return ns.Name
}

// Eventually polls cond every 100 ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
}
