package apilb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait of these tests.
const timeout = 5 * time.Second

// The first server dialled is the preferred one (at first the default
// server), then the others in list order; the one that answers stays
// preferred, even when the list changes around it.
func TestPreferredServer(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	lb := startLB(t, Config{DefaultServer: a.addr})
	lb.SetServers([]string{b.addr, c.addr})
	if got, want := lb.Servers(), []string{b.addr, c.addr, a.addr}; !slices.Equal(got, want) {
		t.Fatalf("servers %v, want the learned ones then the default %v", got, want)
	}
	for range 3 {
		if got := connect(t, lb); got.name != "a" {
			t.Fatalf("connection reached %q, want the default server a while it answers", got.name)
		}
	}

	a.stop()
	if got := connect(t, lb); got.name != "b" {
		t.Fatalf("with a down, a connection reached %q, want b (first in the list)", got.name)
	}
	lb.SetServers([]string{c.addr, b.addr})
	if got := connect(t, lb); got.name != "b" {
		t.Fatalf("after a reorder, a connection reached %q, want b (preferred)", got.name)
	}
}

// A connection that finds no server is closed; the next one, once a
// server is back, goes through.
func TestNoServer(t *testing.T) {
	dead := deadAddr(t)
	lb := startLB(t, Config{DefaultServer: dead})
	conn := dialLB(t, lb)
	if _, err := bufio.NewReader(conn).ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("read with no server: %v, want EOF", err)
	}
	b := startBackend(t, "b")
	lb.SetServers([]string{b.addr})
	if got := connect(t, lb); got.name != "b" {
		t.Fatalf("connection reached %q, want b", got.name)
	}
}

// Bytes pass both ways untouched, and a client's half close reaches the
// server, whose close reaches the client.
func TestHalfClose(t *testing.T) {
	a := startBackend(t, "a")
	lb := startLB(t, Config{DefaultServer: a.addr})
	got := connect(t, lb)
	if _, err := io.WriteString(got.conn, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := got.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(got.r)
	if err != nil || string(rest) != "hello" {
		t.Fatalf("read %q, %v; want the echo %q and EOF", rest, err, "hello")
	}
}

// SetServers closes the connections to the servers it removes, and only
// those: the default server is never removed.
func TestSetServersClosesRemoved(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	lb := startLB(t, Config{DefaultServer: a.addr})
	lb.SetServers([]string{b.addr})
	toA := connect(t, lb)
	a.stopListening()
	toB := connect(t, lb)
	if toA.name != "a" || toB.name != "b" {
		t.Fatalf("connections reached %q and %q, want a then b", toA.name, toB.name)
	}

	lb.SetServers([]string{c.addr})
	if _, err := toB.r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("connection to the removed server b: read %v, want EOF", err)
	}
	toA.echo(t, "still here")
	if got := connect(t, lb); got.name != "c" {
		t.Errorf("new connection reached %q, want c", got.name)
	}
}

// The learned servers survive a restart: an LB made again while its
// default server is down reaches them.
func TestStateFile(t *testing.T) {
	b := startBackend(t, "b")
	state := filepath.Join(t.TempDir(), "lb-servers.json")
	dead := deadAddr(t)

	first, err := New(Config{Addr: "127.0.0.1:0", DefaultServer: dead, StateFile: state, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	first.SetServers([]string{b.addr})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := first.Run(ctx); err != nil { // closes the listener
		t.Fatal(err)
	}

	lb := startLB(t, Config{DefaultServer: dead, StateFile: state})
	if got, want := lb.Servers(), []string{b.addr, dead}; !slices.Equal(got, want) {
		t.Fatalf("servers after restart %v, want %v", got, want)
	}
	if got := connect(t, lb); got.name != "b" {
		t.Fatalf("connection reached %q, want b", got.name)
	}
}

// New fails at once, with ErrPortInUse, on an address another socket holds.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Config{Addr: ln.Addr().String(), DefaultServer: "127.0.0.1:1", Log: discard})
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("New on a port in use: %v, want ErrPortInUse", err)
	}
}

// The end of Run's context closes the listener and every open
// connection, and Run returns (goleak checks its goroutines are gone).
func TestRunStops(t *testing.T) {
	a := startBackend(t, "a")
	lb, err := New(Config{Addr: "127.0.0.1:0", DefaultServer: a.addr, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	open := connect(t, lb)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return")
	}
	if _, err := open.r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("open connection after Run: read %v, want EOF", err)
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(lb.URL(), "https://"), timeout); err == nil {
		conn.Close()
		t.Error("the listener still accepts after Run")
	}
}

func TestDialOrder(t *testing.T) {
	for _, tc := range []struct {
		preferred string
		servers   []string
		want      []string
	}{
		{"a", []string{"b", "c", "a"}, []string{"a", "b", "c"}},
		{"c", []string{"b", "c", "a"}, []string{"c", "b", "a"}},
		{"gone", []string{"b", "a"}, []string{"b", "a"}},
	} {
		if got := dialOrder(tc.preferred, tc.servers); !slices.Equal(got, tc.want) {
			t.Errorf("dialOrder(%q, %v) = %v, want %v", tc.preferred, tc.servers, got, tc.want)
		}
	}
}

func TestServerList(t *testing.T) {
	for _, tc := range []struct {
		learned []string
		want    []string
	}{
		{nil, []string{"d"}},
		{[]string{"b", "c"}, []string{"b", "c", "d"}},
		{[]string{"b", "d"}, []string{"b", "d"}},
	} {
		if got := serverList("d", tc.learned); !slices.Equal(got, tc.want) {
			t.Errorf("serverList(d, %v) = %v, want %v", tc.learned, got, tc.want)
		}
	}
}

var discard = slog.New(slog.DiscardHandler)

// startLB runs an LB on a free loopback port until the test ends.
func startLB(t *testing.T, cfg Config) *LB {
	t.Helper()
	cfg.Addr, cfg.DialTimeout, cfg.Log = "127.0.0.1:0", time.Second, discard
	lb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(timeout):
			t.Error("Run did not return")
		}
	})
	return lb
}

// client is a connection through the LB to the server named name.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	name string
}

// echo checks that the connection still carries bytes both ways.
func (c client) echo(t *testing.T, msg string) {
	t.Helper()
	if _, err := io.WriteString(c.conn, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got, err := c.r.ReadString('\n'); err != nil || got != msg+"\n" {
		t.Fatalf("echo: %q, %v; want %q", got, err, msg)
	}
}

func dialLB(t *testing.T, lb *LB) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(lb.URL(), "https://"), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// connect opens a connection through the LB and reads the name of the
// server it reached.
func connect(t *testing.T, lb *LB) client {
	t.Helper()
	conn := dialLB(t, lb)
	r := bufio.NewReader(conn)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read the server's name: %v", err)
	}
	return client{conn: conn, r: r, name: strings.TrimSuffix(name, "\n")}
}

// backend is a server that writes its name on every connection, then
// echoes what it reads until EOF, and closes.
type backend struct {
	name, addr string
	ln         net.Listener
	wg         sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), ln: ln}
	b.wg.Go(b.accept)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) accept() {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns = append(b.conns, conn)
		b.mu.Unlock()
		b.wg.Go(func() {
			defer conn.Close()
			fmt.Fprintf(conn, "%s\n", b.name)
			_, _ = io.Copy(conn, conn)
		})
	}
}

// stopListening refuses new connections; open ones go on.
func (b *backend) stopListening() { b.ln.Close() }

// stop closes the listener and every connection, and waits for them.
func (b *backend) stop() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
