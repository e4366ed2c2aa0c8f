package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// load runs http-load with args and decodes its JSON line.
func load(t *testing.T, ctx context.Context, args ...string) (loadResult, error) {
	t.Helper()
	var out bytes.Buffer
	err := httpLoad(ctx, args, &out)
	var res loadResult
	if out.Len() > 0 {
		if !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("output %q is not one line", out.String())
		}
		if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
			t.Fatalf("output %q: %v", out.String(), jerr)
		}
	}
	return res, err
}

// countingServer is an httptest server that counts requests and the
// connections they came on; h2c lets it accept HTTP/2 without TLS.
type countingServer struct {
	*httptest.Server
	requests, conns atomic.Int64
	proto           atomic.Value // the last request's protocol, a string
}

func newCountingServer(t *testing.T, h2c bool, h http.HandlerFunc) *countingServer {
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.proto.Store(r.Proto)
		if h != nil {
			h(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.Config.Protocols = &p
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestHTTPLoad(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h2c       bool
		args      []string
		requests  int
		served    int64 // requests the server sees, warm-up included
		wantProto string
		// maxConns bounds the connections the run may open (warm-up included).
		maxConns int64
	}{
		{"HTTP/1.1 keep-alive", false, []string{"--requests", "200", "--concurrency", "4"}, 200, 200, "HTTP/1.1", 4},
		{"HTTP/1.1 without keep-alive", false, []string{"--requests", "20", "--keepalive=false"}, 20, 20, "HTTP/1.1", 20},
		{"h2c", true, []string{"--requests", "200", "--concurrency", "4", "--h2c"}, 200, 200, "HTTP/2.0", 1},
		{"warm-up not counted", false, []string{"--requests", "10", "--warmup", "5"}, 10, 15, "HTTP/1.1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCountingServer(t, tc.h2c, nil)
			res, err := load(t, context.Background(), append(tc.args, "--url", s.URL+"/hostname")...)
			if err != nil {
				t.Fatalf("http-load: %v (%+v)", err, res)
			}
			want := tc.requests
			if res.Requests != want || res.Errors != 0 || res.TimedOut {
				t.Errorf("result %+v, want %d requests and no errors", res, want)
			}
			if got := s.requests.Load(); got != tc.served {
				t.Errorf("server saw %d requests, want %d", got, tc.served)
			}
			if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.Mean <= 0 || res.RPS <= 0 {
				t.Errorf("implausible figures %+v", res)
			}
			if got, _ := s.proto.Load().(string); got != tc.wantProto {
				t.Errorf("protocol %s, want %s", got, tc.wantProto)
			}
			if got := s.conns.Load(); got > tc.maxConns || got < 1 {
				t.Errorf("%d connections, want 1..%d", got, tc.maxConns)
			}
		})
	}
}

func TestHTTPLoadCountsErrors(t *testing.T) {
	var n atomic.Int64
	s := newCountingServer(t, false, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	res, err := load(t, context.Background(), "--url", s.URL, "--requests", "10")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("err = %v, want exit status 1", err)
	}
	if res.Requests != 10 || res.Errors != 5 || !strings.Contains(res.FirstError, "503") {
		t.Errorf("result %+v, want 10 requests, 5 errors, the first a 503", res)
	}
}

func TestHTTPLoadRate(t *testing.T) {
	s := newCountingServer(t, false, nil)
	start := time.Now()
	res, err := load(t, context.Background(), "--url", s.URL, "--requests", "21", "--concurrency", "3", "--rate", "100")
	if err != nil {
		t.Fatal(err)
	}
	// The 21st request is due 200 ms after the first.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("21 requests at 100/s took %s, want at least 200ms", took)
	}
	if res.Requests != 21 || res.RPS > 120 {
		t.Errorf("result %+v, want 21 requests at about 100/s", res)
	}
}

func TestHTTPLoadTimeout(t *testing.T) {
	release := make(chan struct{})
	s := newCountingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	res, err := load(t, context.Background(), "--url", s.URL, "--requests", "5", "--timeout", "200ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("--timeout 200ms ended the run after %s", took)
	}
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("err = %v, want exit status 1", err)
	}
	if !res.TimedOut || res.Requests != 0 || res.Errors != 0 {
		t.Errorf("result %+v, want timed out with nothing completed", res)
	}
}

func TestHTTPLoadGRPCHealth(t *testing.T) {
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
	res, err := load(t, context.Background(), "--grpc-health", l.Addr().String(), "--requests", "100", "--concurrency", "4")
	if err != nil || res.Requests != 100 || res.Errors != 0 || res.P50 <= 0 {
		t.Errorf("serving: %+v, %v; want 100 requests, no errors", res, err)
	}
	get(t, n, "/healthz/fail")
	res, _ = load(t, context.Background(), "--grpc-health", l.Addr().String(), "--requests", "3")
	if res.Errors != 3 || !strings.Contains(res.FirstError, "NOT_SERVING") {
		t.Errorf("not serving: %+v, want 3 errors saying NOT_SERVING", res)
	}
}

func TestHTTPLoadRefuses(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--url", "http://a", "--grpc-health", "a:1"},
		{"--url", "https://a/"},
		{"--url", "a:80"},
		{"--grpc-health", "nohostport"},
		{"--url", "http://a", "--requests", "0"},
		{"--url", "http://a", "--requests", "1000001"},
		{"--url", "http://a", "--concurrency", "0"},
		{"--url", "http://a", "--concurrency", "1001"},
		{"--url", "http://a", "--warmup", "-1"},
		{"--url", "http://a", "--rate", "-1"},
		{"--url", "http://a", "--timeout", "0s"},
		{"--url", "http://a", "--h2c", "--keepalive=false"},
		{"--grpc-health", "a:1", "--h2c"},
		{"--url", "http://a", "extra"},
	} {
		var out bytes.Buffer
		if err := httpLoad(context.Background(), args, &out); err == nil {
			t.Errorf("http-load %q: accepted", args)
		}
		if out.Len() != 0 {
			t.Errorf("http-load %q printed %q", args, out.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 100 * time.Microsecond}, {90, 180 * time.Microsecond}, {99, 198 * time.Microsecond}, {100, 200 * time.Microsecond}, {0, time.Microsecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..200µs, %v) = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := percentile(d[:1], 99); got != time.Microsecond {
		t.Errorf("percentile of one sample = %s", got)
	}
}
