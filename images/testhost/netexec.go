package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// netexec serves the HTTP test endpoints on --http-port, a small UDP
// protocol on --udp-port and, with --grpc-port, the standard gRPC health
// service (whose status follows /healthz, for the kubelet's grpc probe).
// GET /exit?code=N answers, shuts the servers down and exits with N.
func netexec(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("netexec")
	httpPort := fs.Int("http-port", 8080, "HTTP port")
	udpPort := fs.Int("udp-port", 8081, "UDP port (0 disables): answers \"hostname\", \"echo MSG\", \"clientip\"")
	grpcPort := fs.Int("grpc-port", 0, "gRPC health service port (0 disables)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hostname, err := os.Hostname()
	if err != nil {
		return err
	}
	n := newNetexecServer(hostname, shell)

	var servers []func(context.Context) error
	l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*httpPort)))
	if err != nil {
		return err
	}
	servers = append(servers, func(ctx context.Context) error { return serveHTTP(ctx, l, n) })
	if *udpPort > 0 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort("", strconv.Itoa(*udpPort)))
		if err != nil {
			l.Close()
			return err
		}
		servers = append(servers, func(ctx context.Context) error {
			return serveUDP(ctx, pc, func(msg string, from net.Addr) string { return udpReply(hostname, msg, from) })
		})
	}
	if *grpcPort > 0 {
		gl, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*grpcPort)))
		if err != nil {
			l.Close()
			return err
		}
		servers = append(servers, func(ctx context.Context) error { return serveGRPCHealth(ctx, gl, n) })
	}
	// exit ends the servers too, so the /exit response is flushed by the
	// graceful HTTP shutdown before the process goes.
	servers = append(servers, func(ctx context.Context) error {
		select {
		case code := <-n.exit:
			return exitError{code}
		case <-ctx.Done():
			return nil
		}
	})
	fmt.Fprintf(stdout, "netexec: %s: http %d, udp %d, grpc %d\n", hostname, *httpPort, *udpPort, *grpcPort)
	return runAll(ctx, servers...)
}

// netexecServer holds the state behind netexec's endpoints.
type netexecServer struct {
	hostname string
	shell    func(ctx context.Context, cmd string) (stdout, stderr []byte, err error)
	// exit receives the code of the first /exit request; buffered, never
	// closed.
	exit chan int
	mux  *http.ServeMux

	mu sync.Mutex // guards the following
	// probes holds the state of /healthz and /readyz, true meaning ok.
	probes map[string]bool
	// onHealth, if set, is called with the new /healthz state, under mu.
	onHealth func(ok bool)
}

func newNetexecServer(hostname string, shell func(context.Context, string) ([]byte, []byte, error)) *netexecServer {
	n := &netexecServer{
		hostname: hostname,
		shell:    shell,
		exit:     make(chan int, 1),
		mux:      http.NewServeMux(),
		probes:   map[string]bool{"/healthz": true, "/readyz": true},
	}
	n.mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "NOW: "+time.Now().UTC().Format(time.RFC3339Nano))
	})
	n.mux.HandleFunc("/hostname", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, n.hostname) })
	n.mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { text(w, http.StatusOK, r.FormValue("msg")) })
	n.mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) { text(w, http.StatusOK, r.RemoteAddr) })
	n.mux.HandleFunc("/shell", n.handleShell)
	n.mux.HandleFunc("/exit", n.handleExit)
	n.mux.HandleFunc("/write", handleWrite)
	n.mux.HandleFunc("/read", handleRead)
	for path := range n.probes {
		n.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			if n.probe(path) {
				text(w, http.StatusOK, "ok")
				return
			}
			text(w, http.StatusInternalServerError, "fail")
		})
		for suffix, ok := range map[string]bool{"/ok": true, "/fail": false} {
			n.mux.HandleFunc(path+suffix, func(w http.ResponseWriter, _ *http.Request) {
				n.setProbe(path, ok)
				text(w, http.StatusOK, "ok")
			})
		}
	}
	return n
}

func (n *netexecServer) probe(path string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.probes[path]
}

func (n *netexecServer) setProbe(path string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.probes[path] = ok
	if path == "/healthz" && n.onHealth != nil {
		n.onHealth(ok)
	}
}

// watchHealth calls f with the current /healthz state now and after every
// change, until the returned function is called.
func (n *netexecServer) watchHealth(f func(ok bool)) (stop func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onHealth = f
	f(n.probes["/healthz"])
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.onHealth = nil
	}
}

func (n *netexecServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.mux.ServeHTTP(w, r) }

// shellResult is /shell's JSON answer; output and error match agnhost's.
type shellResult struct {
	Output   string `json:"output"`
	Stderr   string `json:"stderr,omitempty"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

func (n *netexecServer) handleShell(w http.ResponseWriter, r *http.Request) {
	cmd := r.FormValue("cmd")
	if cmd == "" {
		text(w, http.StatusBadRequest, "missing cmd")
		return
	}
	stdout, stderr, err := n.shell(r.Context(), cmd)
	res := shellResult{Output: string(stdout), Stderr: string(stderr)}
	if err != nil {
		res.Error = err.Error()
		res.ExitCode = -1
		if ee, ok := err.(*exec.ExitError); ok {
			res.ExitCode = ee.ExitCode()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// shell runs cmd with sh -c. Background processes it leaves behind are not
// reaped (testhost, unlike images/pause, does not reap orphans as PID 1,
// since that would race with exec.Cmd.Wait).
func shell(ctx context.Context, cmd string) (stdout, stderr []byte, err error) {
	var out, errb strings.Builder
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdout, c.Stderr = &out, &errb
	err = c.Run()
	return []byte(out.String()), []byte(errb.String()), err
}

func (n *netexecServer) handleExit(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.FormValue("code"))
	if err != nil || code < 0 || code > 255 {
		text(w, http.StatusBadRequest, "code must be an integer 0..255")
		return
	}
	text(w, http.StatusOK, fmt.Sprintf("exiting with %d", code))
	select {
	case n.exit <- code:
	default: // an earlier /exit already won
	}
}

func handleWrite(w http.ResponseWriter, r *http.Request) {
	path := r.FormValue("path")
	if path == "" {
		text(w, http.StatusBadRequest, "missing path")
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		text(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := os.WriteFile(path, []byte(r.FormValue("data")), 0o644); err != nil {
		text(w, http.StatusInternalServerError, err.Error())
		return
	}
	text(w, http.StatusOK, "ok")
}

func handleRead(w http.ResponseWriter, r *http.Request) {
	path := r.FormValue("path")
	if path == "" {
		text(w, http.StatusBadRequest, "missing path")
		return
	}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		text(w, http.StatusNotFound, err.Error())
	case err != nil:
		text(w, http.StatusInternalServerError, err.Error())
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	}
}

func text(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, s)
}

// udpReply answers netexec's UDP commands: "hostname", "echo MSG" and
// "clientip"; anything else gets no answer.
func udpReply(hostname, msg string, from net.Addr) string {
	msg = strings.TrimRight(msg, "\r\n")
	cmd, arg, _ := strings.Cut(msg, " ")
	switch cmd {
	case "hostname":
		return hostname
	case "echo":
		return arg
	case "clientip":
		return from.String()
	}
	return ""
}

// serveGRPCHealth serves grpc.health.v1.Health on l until ctx ends. The
// overall status ("" service) is SERVING while /healthz is ok.
func serveGRPCHealth(ctx context.Context, l net.Listener, n *netexecServer) error {
	hs := health.NewServer()
	set := func(ok bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ok {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
	}
	defer n.watchHealth(set)()

	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	hs.Shutdown()
	srv.GracefulStop()
	<-errc
	return nil
}
