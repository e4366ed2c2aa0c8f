package e2eutil

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// readyLine is what `skiff server` logs once it serves and bootstrap is done.
const readyLine = "skiff server is ready; the admin kubeconfig is at "

// ServerOptions adjust a Server; the zero value is a server with embedded
// etcd on a fresh data directory and a free port.
type ServerOptions struct {
	// Args are extra `skiff server` flags (e.g. --datastore-endpoint=…).
	Args []string
	// ReadyTimeout bounds the wait for the ready log line (default 3m).
	ReadyTimeout time.Duration
	// Agent keeps the node agent (kubelet) that newer builds run inside
	// `skiff server`; by default it is disabled, so the tests see a control
	// plane only, pods stay Pending and nothing is mounted under the data dir.
	// With it, the test's end tears the agent down (containers, mounts).
	Agent bool
	// Netns runs the server in that network namespace (see NewLAN); Host
	// is then the address it listens on and is reached at (else 127.0.0.1).
	Netns string
	Host  string
}

// Server is a `skiff server` subprocess; it can be stopped and started again
// on the same data directory and port.
type Server struct {
	t          testing.TB
	bin        string
	opts       ServerOptions
	logDir     string
	starts     int
	DataDir    string
	Port       int
	URL        string
	Kubeconfig string

	proc *process
}

// StartServer starts a server and waits until it is ready. The server is
// killed when the test ends; if the test failed, the tail of its log is shown.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	s := &Server{
		t:       t,
		bin:     Binary(t),
		opts:    opts,
		logDir:  t.TempDir(),
		DataDir: filepath.Join(t.TempDir(), "data"),
		Port:    FreePort(t),
	}
	s.URL = "https://" + net.JoinHostPort(cmp.Or(opts.Host, "127.0.0.1"), strconv.Itoa(s.Port))
	s.Kubeconfig = filepath.Join(s.DataDir, "kubeconfig.yaml")
	t.Cleanup(func() {
		if s.proc != nil {
			s.proc.kill()
			if t.Failed() {
				logTail(t, "skiff server", s.proc.logPath, 80)
			}
		}
		if opts.Agent {
			s.teardown()
		}
	})
	s.Start()
	return s
}

// Start starts the server process (again) and waits until it is ready.
func (s *Server) Start() {
	s.t.Helper()
	if s.proc != nil && s.proc.running() {
		s.t.Fatal("skiff server is already running")
	}
	s.starts++
	argv := append(s.inNetns(s.bin, "server",
		"--data-dir", s.DataDir,
		"--https-listen-port", strconv.Itoa(s.Port),
		"--bind-address", cmp.Or(s.opts.Host, "127.0.0.1"),
	), s.opts.Args...)
	if !s.opts.Agent && serverHasFlag(s.t, s.bin, "--disable-agent") {
		argv = append(argv, "--disable-agent")
	}
	p, err := startProcess(filepath.Join(s.logDir, fmt.Sprintf("server-%d.log", s.starts)), argv)
	if err != nil {
		s.t.Fatal(err)
	}
	s.proc = p
	began := time.Now()
	deadline := began.Add(s.opts.ReadyTimeout)
	for !s.proc.logContains(readyLine) {
		if !s.proc.running() {
			logTail(s.t, "skiff server", p.logPath, 60)
			s.t.Fatalf("skiff server exited before it was ready: %v", p.err)
		}
		if time.Now().After(deadline) {
			logTail(s.t, "skiff server", p.logPath, 60)
			s.t.Fatalf("skiff server not ready within %s", s.opts.ReadyTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.waitReadyz(30 * time.Second); err != nil {
		s.t.Fatalf("skiff server logged ready but /readyz is not ok: %v", err)
	}
	s.t.Logf("skiff server (start %d, port %d) ready in %s", s.starts, s.Port, time.Since(began).Round(time.Millisecond))
}

// inNetns is argv run in the server's network namespace, if it has one.
func (s *Server) inNetns(argv ...string) []string {
	if s.opts.Netns == "" {
		return argv
	}
	return append([]string{"nsenter", "--net=/var/run/netns/" + s.opts.Netns}, argv...)
}

// teardown runs `skiff agent teardown` on the server's agent: its
// containers, shims and mounts go.
func (s *Server) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := s.inNetns(s.bin, "agent", "teardown", "--data-dir", filepath.Join(s.DataDir, "agent"))
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		s.t.Errorf("skiff agent teardown: %v\n%s", err, out)
	}
}

// serverHasFlag reports whether `skiff server --help` lists flag.
func serverHasFlag(t testing.TB, bin, flag string) bool {
	out, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s server --help: %v\n%s", bin, err, out)
	}
	return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(flag) + `\b`).Match(out)
}

// waitReadyz polls the anonymous /readyz until it answers 200 "ok".
func (s *Server) waitReadyz(d time.Duration) error {
	c := s.HTTPClient(false)
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(s.URL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return nil
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// Stop sends SIGTERM and waits at most d for the server to exit. It returns
// the exit code and how long the exit took; a server still running after d
// is killed and reported as exit code -1.
func (s *Server) Stop(d time.Duration) (code int, took time.Duration) {
	began := time.Now()
	s.proc.signal(syscall.SIGTERM)
	code, exited := s.proc.wait(d)
	took = time.Since(began)
	if !exited {
		s.proc.kill()
	}
	return code, took
}

// Signal sends sig to the server (SIGSTOP and SIGCONT freeze and thaw it,
// as a partition would).
func (s *Server) Signal(sig syscall.Signal) { s.proc.signal(sig) }

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (s *Server) Kill() { s.proc.kill() }

// LogPath is the log file of the current (or last) server process.
func (s *Server) LogPath() string { return s.proc.logPath }

// RESTConfig is the admin configuration from the server's kubeconfig, with
// client-side rate limits raised for load tests.
func (s *Server) RESTConfig() *rest.Config {
	s.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		s.t.Fatalf("load %s: %v", s.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.Timeout = 30 * time.Second
	return cfg
}

// Client is a clientset with the admin credentials.
func (s *Server) Client() kubernetes.Interface {
	s.t.Helper()
	c, err := kubernetes.NewForConfig(s.RESTConfig())
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// HTTPClient is a plain HTTPS client that trusts the cluster CA and, with
// admin set, presents the admin client certificate (else it is anonymous).
func (s *Server) HTTPClient(admin bool) *http.Client {
	s.t.Helper()
	cfg := s.RESTConfig()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAData) {
		s.t.Fatalf("no CA certificate in %s", s.Kubeconfig)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if admin {
		cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
		if err != nil {
			s.t.Fatalf("admin client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// etcdReady is the server's log line naming the embedded etcd's client URL.
var etcdReady = regexp.MustCompile(`msg="embedded etcd ready".* client=(\S+)`)

// EtcdURL is the client URL of the current process's embedded etcd, read
// from its log: tests use it to look at what the API server stored.
func (s *Server) EtcdURL() string {
	s.t.Helper()
	data, err := os.ReadFile(s.proc.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	m := etcdReady.FindSubmatch(data)
	if m == nil {
		s.t.Fatalf("no %q line in %s", "embedded etcd ready", s.proc.logPath)
	}
	return string(m[1])
}

// Args replaces the extra flags of the next Start.
func (s *Server) Args(args []string) { s.opts.Args = args }

// StartSim runs `skiff sim` with nodes simulated nodes named PREFIX0… against
// the cluster of kubeconfig until the test ends, with more `skiff sim`
// flags in args (e.g. --memory 1Gi); its output goes to a file in the
// test's temporary directory.
func StartSim(t testing.TB, kubeconfig string, nodes int, prefix string, args ...string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), append([]string{"sim", "--kubeconfig", kubeconfig, "--nodes", strconv.Itoa(nodes), "--name-prefix", prefix}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logFile.Close()
	})
}
