package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// fakeShell answers /shell without running anything.
func fakeShell(_ context.Context, cmd string) ([]byte, []byte, error) {
	switch cmd {
	case "echo hi":
		return []byte("hi\n"), nil, nil
	default:
		return nil, []byte("sh: " + cmd + ": not found\n"), errors.New("exit status 127")
	}
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.String()
}

func TestNetexecEndpoints(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	for _, tc := range []struct {
		target   string
		wantCode int
		wantBody string
	}{
		{"/hostname", 200, "web-0"},
		{"/echo?msg=hello+world", 200, "hello world"},
		{"/echo", 200, ""},
		{"/clientip", 200, "192.0.2.1:1234"}, // httptest's RemoteAddr
		{"/shell", 400, "missing cmd"},
		{"/exit?code=abc", 400, "code must be an integer 0..255"},
		{"/exit?code=256", 400, "code must be an integer 0..255"},
		{"/write", 400, "missing path"},
		{"/read", 400, "missing path"},
		{"/read?path=/does/not/exist", 404, "open /does/not/exist: no such file or directory"},
		{"/no-such-endpoint", 404, "404 page not found\n"},
	} {
		code, body := get(t, n, tc.target)
		if code != tc.wantCode || body != tc.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tc.target, code, body, tc.wantCode, tc.wantBody)
		}
	}
}

func TestNetexecShell(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	for _, tc := range []struct {
		cmd  string
		want shellResult
	}{
		{"echo hi", shellResult{Output: "hi\n"}},
		{"nope", shellResult{Stderr: "sh: nope: not found\n", ExitCode: -1, Error: "exit status 127"}},
	} {
		code, body := get(t, n, "/shell?cmd="+url.QueryEscape(tc.cmd))
		var got shellResult
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 {
			t.Fatalf("GET /shell?cmd=%s = %d %q (%v)", tc.cmd, code, body, err)
		}
		if got != tc.want {
			t.Errorf("/shell?cmd=%s = %+v, want %+v", tc.cmd, got, tc.want)
		}
	}
}

func TestShellExitCode(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	out, _, err := shell(context.Background(), "echo out; exit 3")
	n := newNetexecServer("h", func(context.Context, string) ([]byte, []byte, error) { return out, nil, err })
	_, body := get(t, n, "/shell?cmd=x")
	var got shellResult
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Output != "out\n" || got.ExitCode != 3 {
		t.Errorf("got %+v, want output %q and exitCode 3", got, "out\n")
	}
}

func TestNetexecWriteRead(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	path := filepath.Join(t.TempDir(), "sub", "f.txt")
	if code, body := get(t, n, "/write?path="+url.QueryEscape(path)+"&data=payload"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	if code, body := get(t, n, "/read?path="+url.QueryEscape(path)); code != 200 || body != "payload" {
		t.Errorf("read = %d %q, want 200 %q", code, body, "payload")
	}
}

func TestNetexecProbes(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	var seen []bool
	stop := n.watchHealth(func(ok bool) { seen = append(seen, ok) })
	steps := []struct {
		target   string
		wantCode int
		wantBody string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ok"},
		{"/healthz/fail", 200, "ok"},
		{"/healthz", 500, "fail"},
		{"/readyz", 200, "ok"}, // independent of /healthz
		{"/readyz/fail", 200, "ok"},
		{"/readyz", 500, "fail"},
		{"/healthz/ok", 200, "ok"},
		{"/healthz", 200, "ok"},
		{"/readyz/ok", 200, "ok"},
		{"/readyz", 200, "ok"},
	}
	for _, s := range steps {
		if code, body := get(t, n, s.target); code != s.wantCode || body != s.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", s.target, code, body, s.wantCode, s.wantBody)
		}
	}
	stop()
	get(t, n, "/healthz/fail")
	want := []bool{true, false, true}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Errorf("health watcher saw %v, want %v", seen, want)
	}
}

func TestNetexecExit(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	if code, body := get(t, n, "/exit?code=7"); code != 200 || body != "exiting with 7" {
		t.Fatalf("GET /exit = %d %q", code, body)
	}
	get(t, n, "/exit?code=9") // the first request wins and this one must not block
	if got := <-n.exit; got != 7 {
		t.Errorf("exit code %d, want 7", got)
	}
}

func TestUDPReply(t *testing.T) {
	from := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 4000}
	for _, tc := range []struct{ msg, want string }{
		{"hostname", "web-0"},
		{"hostname\n", "web-0"},
		{"echo hello there", "hello there"},
		{"clientip", "10.0.0.9:4000"},
		{"bogus", ""},
	} {
		if got := udpReply("web-0", tc.msg, from); got != tc.want {
			t.Errorf("udpReply(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestGRPCHealthFollowsHealthz(t *testing.T) {
	n := newNetexecServer("web-0", fakeShell)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveGRPCHealth(ctx, l, n) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if got := check(); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v, want SERVING", got)
	}
	get(t, n, "/healthz/fail")
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after /healthz/fail: status %v, want NOT_SERVING", got)
	}
	get(t, n, "/healthz/ok")
	if got := check(); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("after /healthz/ok: status %v, want SERVING", got)
	}
}

func TestUDPClient(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serveUDP(ctx, pc, func(msg string, from net.Addr) string { return udpReply("web-0", msg, from) })
	var out bytes.Buffer
	err = udpClient(context.Background(), []string{"--to", pc.LocalAddr().String(), "--interval", "20ms", "--count", "3"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "web-0\nweb-0\nweb-0\n" {
		t.Errorf("answers %q, want three web-0 lines", got)
	}
	if err := udpClient(context.Background(), []string{"--count", "3"}, &out); err == nil {
		t.Error("accepted a missing --to")
	}
}
