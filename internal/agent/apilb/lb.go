package apilb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// DefaultDialTimeout bounds each dial to a server.
const DefaultDialTimeout = 3 * time.Second

// ErrPortInUse is New's error when another process holds the address.
var ErrPortInUse = errors.New("port in use")

// Config is what an LB is made from.
type Config struct {
	// Addr is where the LB listens, host:port (port 0 picks a free one).
	Addr string
	// DefaultServer is the API server the node was told about, host:port:
	// always in the list, after the learned ones, and preferred at first.
	DefaultServer string
	// StateFile, if set, keeps the learned servers across restarts.
	StateFile string
	// DialTimeout bounds each dial to a server (default DefaultDialTimeout).
	DialTimeout time.Duration
	// Log gets a line when the servers change or none answers.
	Log *slog.Logger
}

// LB is a TCP load balancer over the API servers. Make one with New and
// run it once with Run.
type LB struct {
	cfg    Config
	ln     net.Listener
	dialer net.Dialer

	mu sync.Mutex // guards the following
	// learned are the servers from the last SetServers (or the state file).
	learned []string
	// servers is serverList(cfg.DefaultServer, learned).
	servers []string
	// preferred is the server dialled first.
	preferred string
	// unreachable is set when the last connection found no server, so that
	// an outage is logged once.
	unreachable bool
	// conns are the open connections.
	conns map[*proxyConn]struct{}
	// stopped is set when Run ends: no connection is opened after it.
	stopped bool
}

// proxyConn is one client connection and its server connection.
type proxyConn struct {
	client, server net.Conn
	// addr is the server's host:port.
	addr string
}

func (c *proxyConn) close() {
	c.client.Close()
	c.server.Close()
}

// New listens on cfg.Addr at once (a port in use is ErrPortInUse) and
// loads the servers learned before from cfg.StateFile.
func New(cfg Config) (*LB, error) {
	if cfg.DefaultServer == "" {
		return nil, errors.New("apilb: no default server")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: %v", ErrPortInUse, err)
	}
	if err != nil {
		return nil, err
	}
	lb := &LB{
		cfg:       cfg,
		ln:        ln,
		dialer:    net.Dialer{Timeout: cfg.DialTimeout},
		preferred: cfg.DefaultServer,
		conns:     map[*proxyConn]struct{}{},
	}
	if cfg.StateFile != "" {
		learned, err := loadState(cfg.StateFile)
		if err != nil {
			cfg.Log.Warn("ignoring the API servers saved by the last start", "file", cfg.StateFile, "err", err)
		}
		lb.learned = learned
	}
	lb.servers = serverList(cfg.DefaultServer, lb.learned)
	return lb, nil
}

// URL is the LB's address as an API server URL, for kubeconfigs.
func (lb *LB) URL() string { return "https://" + lb.ln.Addr().String() }

// Servers is the current list, in dial order after the preferred server.
func (lb *LB) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return slices.Clone(lb.servers)
}

// SetServers replaces the learned servers (host:port each): the default
// server stays in the list whatever they are. Connections to servers no
// longer in the list are closed, and the new list is saved.
func (lb *LB) SetServers(learned []string) {
	learned = unique(learned)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if slices.Equal(learned, lb.learned) {
		return
	}
	lb.learned, lb.servers = learned, serverList(lb.cfg.DefaultServer, learned)
	lb.cfg.Log.Info("API servers changed", "servers", lb.servers)
	if lb.cfg.StateFile != "" {
		if err := saveState(lb.cfg.StateFile, learned); err != nil {
			lb.cfg.Log.Warn("cannot save the API servers", "file", lb.cfg.StateFile, "err", err)
		}
	}
	for c := range lb.conns {
		if !slices.Contains(lb.servers, c.addr) {
			c.close()
		}
	}
}

// Run proxies connections until ctx ends, then closes the listener and
// every open connection, and returns once their goroutines have exited.
func (lb *LB) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer lb.stop()
	stopAccepting := context.AfterFunc(ctx, func() { lb.ln.Close() })
	defer stopAccepting()
	for {
		client, err := lb.ln.Accept()
		switch {
		case ctx.Err() != nil:
			if err == nil {
				client.Close()
			}
			return nil
		case errors.Is(err, net.ErrClosed):
			return err
		case err != nil:
			// Out of file descriptors, say: wait a little, as net/http does.
			lb.cfg.Log.Warn("accept", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		wg.Go(func() { lb.serve(ctx, client) })
	}
}

// stop closes the listener and the open connections, and refuses new ones.
func (lb *LB) stop() {
	lb.ln.Close()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.stopped = true
	for c := range lb.conns {
		c.close()
	}
}

// serve connects client to a server and copies bytes both ways.
func (lb *LB) serve(ctx context.Context, client net.Conn) {
	server, addr, err := lb.dial(ctx)
	if err != nil {
		client.Close()
		lb.noServer(ctx, err)
		return
	}
	c := &proxyConn{client: client, server: server, addr: addr}
	if !lb.track(c) {
		c.close()
		return
	}
	defer lb.untrack(c)
	pipe(client, server)
}

// dial connects to the first server of dialOrder that answers, which
// becomes the preferred one.
func (lb *LB) dial(ctx context.Context) (net.Conn, string, error) {
	lb.mu.Lock()
	order := dialOrder(lb.preferred, lb.servers)
	lb.mu.Unlock()
	var errs []error
	for _, addr := range order {
		conn, err := lb.dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			lb.prefer(addr)
			return conn, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

// prefer makes addr the server dialled first.
func (lb *LB) prefer(addr string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.unreachable {
		lb.cfg.Log.Info("an API server answers again", "server", addr)
	} else if addr != lb.preferred {
		lb.cfg.Log.Info("API server failover", "from", lb.preferred, "to", addr)
	}
	lb.preferred, lb.unreachable = addr, false
}

// noServer logs, once per outage, that no server answered.
func (lb *LB) noServer(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if !lb.unreachable {
		lb.cfg.Log.Warn("no API server answers", "servers", lb.servers, "err", err)
	}
	lb.unreachable = true
}

// track records c as open, unless Run has ended or c's server has left the
// list while it was dialled.
func (lb *LB) track(c *proxyConn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.stopped || !slices.Contains(lb.servers, c.addr) {
		return false
	}
	lb.conns[c] = struct{}{}
	return true
}

func (lb *LB) untrack(c *proxyConn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	delete(lb.conns, c)
	c.close()
}

// pipe copies bytes both ways until both directions have ended: the end
// of one direction is passed on as a half close, an error ends both.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(a, b) })
	copyHalf(b, a)
	wg.Wait()
}

// copyHalf copies src to dst until src ends, then closes dst for writing
// (a TCP FIN), or closes both if the copy failed.
func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if hc, ok := dst.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		return
	}
	dst.Close()
}

// serverList is the learned servers, then the default one unless it is
// among them.
func serverList(defaultServer string, learned []string) []string {
	list := slices.Clone(learned)
	if !slices.Contains(list, defaultServer) {
		list = append(list, defaultServer)
	}
	return list
}

// dialOrder is the preferred server, if it is in the list, then the others
// in list order.
func dialOrder(preferred string, servers []string) []string {
	order := make([]string, 0, len(servers))
	if slices.Contains(servers, preferred) {
		order = append(order, preferred)
	}
	for _, s := range servers {
		if s != preferred {
			order = append(order, s)
		}
	}
	return order
}

// unique drops empty and repeated entries, keeping the first of each.
func unique(list []string) []string {
	var out []string
	for _, s := range list {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
