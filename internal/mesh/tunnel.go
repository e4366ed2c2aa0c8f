package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// A tunnel is an HTTP/2 connection over mutual TLS between two node proxies
// (Istio's HBONE): one per source identity, destination node and
// destination identity, each TCP connection through it one CONNECT stream
// whose authority is the destination pod's address and port. The client
// presents the source workload's certificate and checks that the server
// presents the destination workload's; the server names the certificate it
// needs by the TLS server name (Identity.ServerName).

// tunnelKey names one pooled tunnel.
type tunnelKey struct {
	src, dst Identity
	node     netip.Addr
}

// tunnels pools client connections.
type tunnels struct {
	transport *http2.Transport
	// port is where peers listen (TunnelPort; tests change it).
	port uint16

	mu    sync.Mutex // guards conns
	conns map[tunnelKey]*http2.ClientConn
}

func newTunnels() *tunnels {
	return &tunnels{
		transport: &http2.Transport{ReadIdleTimeout: 30 * time.Second, PingTimeout: 10 * time.Second},
		port:      TunnelPort,
		conns:     map[tunnelKey]*http2.ClientConn{},
	}
}

// conn is the pooled connection for key, dialled with cfg when there is
// none that takes new streams.
func (t *tunnels) conn(ctx context.Context, key tunnelKey, cfg *tls.Config) (*http2.ClientConn, error) {
	t.mu.Lock()
	cc := t.conns[key]
	t.mu.Unlock()
	if cc != nil && cc.CanTakeNewRequest() {
		return cc, nil
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(key.node, t.port).String())
	if err != nil {
		return nil, err
	}
	cc, err = t.transport.NewClientConn(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.mu.Lock()
	if old := t.conns[key]; old != nil && old != cc {
		go old.Shutdown(context.Background()) // ends once its streams do
	}
	t.conns[key] = cc
	t.mu.Unlock()
	return cc, nil
}

// closeAll closes every pooled connection (the end of a run).
func (t *tunnels) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, cc := range t.conns {
		cc.Close()
		delete(t.conns, k)
	}
}

// serviceHeader names, on a CONNECT request, the Service (NS/NAME) the
// client addressed, for the destination's metrics.
const serviceHeader = "Skiff-Service"

// open opens a stream to target through the tunnel of key, telling the
// server the original client's address and the Service it addressed
// (NS/NAME or "").
func (t *tunnels) open(ctx context.Context, key tunnelKey, cfg *tls.Config, target netip.AddrPort, client netip.Addr, service string) (*stream, error) {
	cc, err := t.conn(ctx, key, cfg)
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", key.node, err)
	}
	pr, pw := io.Pipe()
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Host: target.String()},
		Host:          target.String(),
		Header:        http.Header{"Forwarded": {"for=" + strconv.Quote(client.String())}},
		Body:          pr,
		ContentLength: -1,
	}).WithContext(ctx)
	if service != "" {
		req.Header.Set(serviceHeader, service)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		pw.Close()
		return nil, fmt.Errorf("tunnel to %s: %w", key.node, err)
	}
	if resp.StatusCode != http.StatusOK {
		pw.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, &refusedError{status: resp.StatusCode, msg: strings.TrimSpace(string(body))}
	}
	return &stream{r: resp.Body, w: pw}, nil
}

// refusedError is a tunnel server's refusal of a stream.
type refusedError struct {
	status int
	msg    string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("destination proxy refused: %d %s", e.status, e.msg)
}

// stream is the client side of one CONNECT stream.
type stream struct {
	r io.ReadCloser
	w *io.PipeWriter
}

func (s *stream) Read(b []byte) (int, error)  { return s.r.Read(b) }
func (s *stream) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *stream) CloseWrite() error           { return s.w.Close() }
func (s *stream) Close() error {
	s.w.Close()
	return s.r.Close()
}

// serverStream is the server side of one CONNECT stream.
type serverStream struct {
	r io.ReadCloser
	w http.ResponseWriter

	mu sync.Mutex // guards closed, and w against use after the handler returns
	// closed is set by CloseWrite: from then on writes fail.
	closed bool
	// done is closed by CloseWrite: the handler returns, which ends the
	// response stream.
	done chan struct{}
}

func (s *serverStream) Read(b []byte) (int, error) { return s.r.Read(b) }
func (s *serverStream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(b)
	if err == nil {
		err = http.NewResponseController(s.w).Flush()
	}
	return n, err
}
func (s *serverStream) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	return nil
}
func (s *serverStream) Close() error {
	s.CloseWrite()
	return s.r.Close()
}

// halfCloser is a connection whose sending side closes alone.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// splice copies both ways between a (the client's side) and b until both
// directions end, and returns the bytes copied from a to b and from b to a.
// Each side's end of sending is passed on as a half-close.
func splice(a, b halfCloser) (up, down int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		up, _ = io.Copy(b, a)
		b.CloseWrite()
	}()
	down, _ = io.Copy(a, b)
	a.CloseWrite()
	wg.Wait()
	a.Close()
	b.Close()
	return up, down
}
