// Package tunnel carries requests from the upstream to a downstream's API
// over a connection the downstream's agent opened: the agent dials the
// upstream (HTTPS, its service account token), asks to switch protocols,
// and from then on serves HTTP/2 on that connection while the upstream is
// the HTTP/2 client. The upstream thus reaches clusters behind NAT or
// firewalls without holding their credentials: what it sends, the agent
// forwards to its own API server as the user named in the request's
// impersonation headers.
package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Protocol is the Upgrade token of the switch.
const Protocol = "skiff-fleet-tunnel/1"

// Path is where agents open their tunnels on the upstream's HTTPS port.
const Path = "/fleet.skiff.dev/tunnel"

// handshakeTimeout bounds the switch to the tunnel.
const handshakeTimeout = 30 * time.Second

// pingInterval is how often the upstream checks that a tunnel is alive.
const pingInterval = 10 * time.Second

// Registry holds the open tunnels of one upstream server, by cluster.
type Registry struct {
	mu    sync.Mutex
	conns map[string]*http2.ClientConn // guarded by mu
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{conns: map[string]*http2.ClientConn{}} }

// Accept takes over the request's connection as cluster's tunnel, replacing
// any it had; it returns once the tunnel is set up. ctx ends its keepalive.
func (r *Registry) Accept(ctx context.Context, w http.ResponseWriter, req *http.Request, cluster string) error {
	if req.Header.Get("Upgrade") != Protocol {
		http.Error(w, "expected Upgrade: "+Protocol, http.StatusBadRequest)
		return errors.New("no upgrade to " + Protocol)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "the tunnel needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return errors.New("the connection cannot be taken over (HTTP/2?)")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return err
	}
	if _, err := rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"); err != nil {
		conn.Close()
		return err
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return err
	}
	cc, err := (&http2.Transport{ReadIdleTimeout: 30 * time.Second, PingTimeout: 10 * time.Second}).NewClientConn(conn)
	if err != nil {
		conn.Close()
		return err
	}
	r.mu.Lock()
	if old := r.conns[cluster]; old != nil {
		old.Close()
	}
	r.conns[cluster] = cc
	r.mu.Unlock()
	go r.keepalive(ctx, cluster, cc)
	return nil
}

// keepalive pings the tunnel and forgets it once it fails.
func (r *Registry) keepalive(ctx context.Context, cluster string, cc *http2.ClientConn) {
	defer func() {
		cc.Close()
		r.mu.Lock()
		if r.conns[cluster] == cc {
			delete(r.conns, cluster)
		}
		r.mu.Unlock()
	}()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cc.Ping(pctx)
		cancel()
		if err != nil || cc.State().Closed {
			return
		}
	}
}

// Transport returns the tunnel of cluster, if this server holds one.
func (r *Registry) Transport(cluster string) (http.RoundTripper, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cc, ok := r.conns[cluster]
	if !ok || !cc.CanTakeNewRequest() {
		return nil, false
	}
	return cc, true
}

// Dial opens the tunnel from the agent's side and serves handler on it
// until the connection ends or ctx does. upstream is the upstream's URL,
// tlsConfig trusts its CA; the bearer token authenticates the agent.
func Dial(ctx context.Context, upstream string, tlsConfig *tls.Config, bearer string, handler http.Handler) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	cfg := tlsConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Whatever it waits for, ctx ending ends it; the switch itself must
	// be done within handshakeTimeout.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, upstream+Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	if err := req.Write(conn); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		return fmt.Errorf("the upstream refused the tunnel: %s: %s", resp.Status, body[:n])
	}
	if br.Buffered() > 0 {
		return errors.New("the upstream spoke before the tunnel was up")
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return err
	}
	(&http2.Server{IdleTimeout: 0}).ServeConn(conn, &http2.ServeConnOpts{Context: ctx, Handler: handler})
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("the tunnel closed")
}
