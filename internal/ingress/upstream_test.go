package ingress

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend serves each connection with handle, which reads requests from
// br and writes answers to c itself; it counts connections.
func rawBackend(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func newH1(t *testing.T) *h1Upstream {
	u := &h1Upstream{dial: (&net.Dialer{}).DialContext, maxIdle: 4, idleTimeout: time.Minute}
	t.Cleanup(u.CloseIdleConnections)
	return u
}

// h1Do sends a bodiless request through u, with X-Mode: mode when mode is
// set, and reads the whole answer.
func h1Do(u *h1Upstream, method, addr, mode string) (*http.Response, string, error) {
	req, _ := http.NewRequest(method, "http://"+addr+"/", nil)
	if mode != "" {
		req.Header.Set("X-Mode", mode)
	}
	resp, err := u.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestH1Upstream: keep-alive reuse, HEAD, 1xx skipped, Connection: close
// honoured, and a kept-alive connection the endpoint closed is replaced
// without the caller seeing an error.
func TestH1Upstream(t *testing.T) {
	addr, conns := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for n := 1; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch {
			case req.Method == http.MethodHead:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
			case req.Header.Get("X-Mode") == "early-hints":
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case req.Header.Get("X-Mode") == "close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
				return
			case req.Header.Get("X-Mode") == "one-shot":
				// Answers, keeps the connection idle, then drops it.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				time.Sleep(50 * time.Millisecond)
				return
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	u := newH1(t)
	do := func(method, mode string) (*http.Response, string, error) { return h1Do(u, method, addr, mode) }
	for i := range 3 {
		if _, body, err := do(http.MethodGet, ""); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q %v", i, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three GETs in a row used %d connections, want 1 (kept alive)", n)
	}
	if resp, body, err := do(http.MethodHead, ""); err != nil || body != "" || resp.ContentLength != 42 {
		t.Errorf("HEAD: body %q, length %d, err %v; want no body, length 42", body, resp.ContentLength, err)
	}
	if resp, body, err := do(http.MethodGet, "early-hints"); err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Errorf("103 then 200: %v %q %v", resp, body, err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("after HEAD and a 103: %d connections, want still 1", n)
	}
	if _, _, err := do(http.MethodGet, "close"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := do(http.MethodGet, ""); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("after Connection: close: %d connections, want a second one", n)
	}
	// The endpoint drops an idle connection: the next request goes on a
	// new one, without an error.
	if _, _, err := do(http.MethodGet, "one-shot"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, body, err := do(http.MethodGet, ""); err != nil || body != "ok" {
		t.Errorf("GET after the endpoint closed the idle connection: %q %v, want ok", body, err)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
	// The endpoint leaves the table: its idle connection is closed.
	u.retain([]string{"192.0.2.1:80"})
	if _, _, err := do(http.MethodGet, ""); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("after retain without the endpoint: %d connections, want a new (4th) one", n)
	}
}

// TestH1UpstreamCancel: a context cancelled while the endpoint has not
// answered ends the request with the context's cause, and the connection
// is not reused; a body closed before its end closes the connection rather
// than read the rest.
func TestH1UpstreamCancel(t *testing.T) {
	addr, conns := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/slow":
				time.Sleep(2 * time.Second)
			case "/endless":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				for {
					if _, err := io.WriteString(c, "5\r\nhello\r\n"); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	u := newH1(t)
	cause := errors.New("too slow")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/slow", nil)
	start := time.Now()
	if _, err := u.RoundTrip(req); !errors.Is(err, cause) || time.Since(start) > time.Second {
		t.Errorf("cancelled request: err %v after %v, want %v at once", err, time.Since(start), cause)
	}

	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/endless", nil)
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("endless body: %q %v", buf, err)
	}
	done := make(chan struct{})
	go func() { resp.Body.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("closing an endless body did not return: it is being read to its end")
	}
	if _, body, err := h1Do(u, http.MethodGet, addr, ""); err != nil || body != "ok" {
		t.Errorf("GET after: %q %v", body, err)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (neither the cancelled nor the cut one reused)", n)
	}
}
