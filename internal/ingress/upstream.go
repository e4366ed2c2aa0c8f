package ingress

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// h1Upstream speaks HTTP/1.1 to endpoints on the calling goroutine, for the
// requests that carry no body and ask for no protocol upgrade (most of
// them): it writes the request and reads the answer's head itself, and
// hands the connection back to its pool when the body has been read to the
// end. net/http's Transport, which the proxy uses for everything else,
// passes each request to a writer goroutine and each answer back from a
// reader goroutine of the connection: two hand-offs per request that this
// path does without.
//
// A kept-alive connection the endpoint has closed meanwhile fails on its
// first read; the request (bodiless, so safe to send again) is then sent
// once more on a new connection, as the Transport does.
type h1Upstream struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // per endpoint
	idleTimeout time.Duration // an idle connection older than this is closed

	mu   sync.Mutex // guards idle
	idle map[string][]*h1Conn
}

type h1Conn struct {
	net.Conn
	addr      string // the endpoint's, as dialed
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// eligible tells whether r may take this path.
func (u *h1Upstream) eligible(r *http.Request) bool {
	return (r.Body == nil || r.Body == http.NoBody) && r.Header.Get("Upgrade") == "" && r.Method != http.MethodConnect
}

// errStaleConn marks a failure on a reused connection before any byte of
// the answer arrived.
var errStaleConn = errors.New("kept-alive connection closed by the endpoint")

func (u *h1Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	for {
		c, reused, err := u.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := u.exchange(c, req, reused)
		if errors.Is(err, errStaleConn) {
			continue // on a new connection (or a fresher idle one)
		}
		return resp, err
	}
}

// exchange sends req on c and reads the answer's head, skipping 1xx
// interim answers. On a reused connection that ends before the answer's
// first byte, the error is errStaleConn.
func (u *h1Upstream) exchange(c *h1Conn, req *http.Request, reused bool) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		if ctxErr := context.Cause(ctx); ctx.Err() != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	if _, err := c.br.Peek(1); err != nil && reused && ctx.Err() == nil {
		return fail(errStaleConn)
	}
	var resp *http.Response
	for {
		var err error
		if resp, err = http.ReadResponse(c.br, req); err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	reusable := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.Body == nil {
		u.release(c, stop, reusable)
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = &h1Body{body: resp.Body, u: u, c: c, stop: stop, reusable: reusable}
	return resp, nil
}

// get returns an idle connection to addr, or a new one.
func (u *h1Upstream) get(ctx context.Context, addr string) (c *h1Conn, reused bool, err error) {
	now := time.Now()
	u.mu.Lock()
	for list := u.idle[addr]; len(list) > 0; list = u.idle[addr] {
		c = list[len(list)-1]
		u.idle[addr] = list[:len(list)-1]
		if now.Sub(c.idleSince) < u.idleTimeout {
			u.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	u.mu.Unlock()
	conn, err := u.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &h1Conn{Conn: conn, addr: addr, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// release ends an exchange on c: back to the idle pool when it may carry
// another, closed otherwise.
func (u *h1Upstream) release(c *h1Conn, stop func() bool, reusable bool) {
	if !stop() || !reusable || c.br.Buffered() > 0 {
		// The context fired (the deadline is in the past), the endpoint
		// closes, or it sent more than it should have.
		c.Close()
		return
	}
	c.idleSince = time.Now()
	addr := c.addr
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.idle == nil {
		u.idle = map[string][]*h1Conn{}
	}
	if len(u.idle[addr]) >= u.maxIdle {
		c.Close()
		return
	}
	u.idle[addr] = append(u.idle[addr], c)
}

// retain closes the idle connections to endpoints not in live (sorted):
// departed pods leave no connections behind.
func (u *h1Upstream) retain(live []string) {
	var gone []*h1Conn
	u.mu.Lock()
	for addr, list := range u.idle {
		if _, found := slices.BinarySearch(live, addr); !found {
			gone = append(gone, list...)
			delete(u.idle, addr)
		}
	}
	u.mu.Unlock()
	for _, c := range gone {
		c.Close()
	}
}

// CloseIdleConnections closes every idle connection.
func (u *h1Upstream) CloseIdleConnections() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
}

// h1Body is an answer's body: read to its end, it hands the connection back;
// closed before, it closes the connection (rather than read the rest, as
// the body's own Close would).
type h1Body struct {
	body     io.ReadCloser
	u        *h1Upstream
	c        *h1Conn
	stop     func() bool
	reusable bool

	mu   sync.Mutex // guards done
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

func (b *h1Body) finish(eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if eof {
		b.u.release(b.c, b.stop, b.reusable)
		return
	}
	b.stop()
	b.c.Close()
}
