package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// serveHostname answers the pod's hostname on --port: over HTTP (any path),
// over TCP (written on accept, then the connection closes) and over UDP (one
// datagram in, the hostname back). HTTP is on unless only --tcp or --udp is
// given; TCP and UDP can share the port number.
func serveHostname(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("serve-hostname")
	port := fs.Int("port", 8080, "port to listen on")
	useHTTP := fs.Bool("http", false, "serve HTTP (the default when neither --tcp nor --udp is given)")
	useTCP := fs.Bool("tcp", false, "serve raw TCP")
	useUDP := fs.Bool("udp", false, "serve UDP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *useHTTP && *useTCP {
		return errors.New("--http and --tcp both need the TCP port; pick one")
	}
	if !*useTCP && !*useUDP {
		*useHTTP = true
	}
	hostname, err := os.Hostname()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("", strconv.Itoa(*port))

	var servers []func(context.Context) error
	var closers []io.Closer // closed if a later listen fails
	fail := func(err error) error {
		for _, c := range closers {
			c.Close()
		}
		return err
	}
	if *useHTTP {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, l)
		servers = append(servers, func(ctx context.Context) error {
			return serveHTTP(ctx, l, hostnameHandler(hostname))
		})
	}
	if *useTCP {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, l)
		servers = append(servers, func(ctx context.Context) error { return serveTCPHostname(ctx, l, hostname) })
	}
	if *useUDP {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, func(ctx context.Context) error {
			return serveUDP(ctx, pc, func(string, net.Addr) string { return hostname })
		})
	}
	fmt.Fprintf(stdout, "serve-hostname: %s on port %d (http=%t tcp=%t udp=%t)\n", hostname, *port, *useHTTP, *useTCP, *useUDP)
	return runAll(ctx, servers...)
}

// hostnameHandler answers every request with the hostname.
func hostnameHandler(hostname string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, hostname)
	})
}

// runAll runs every server until ctx ends or one fails, then stops the rest
// and returns the first error after all have returned.
func runAll(ctx context.Context, servers ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errs <- s(ctx) }()
	}
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// serveHTTP serves h on l until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	// HTTP/1.1 and h2c (HTTP/2 with prior knowledge), as agnhost's
	// netexec answers both.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, Protocols: &protocols}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

// serveTCPHostname writes the hostname to each connection and closes it.
func serveTCPHostname(ctx context.Context, l net.Listener, hostname string) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, hostname)
		}()
	}
}

// serveUDP answers each datagram with reply(payload, sender) until ctx ends.
// An empty reply sends nothing.
func serveUDP(ctx context.Context, pc net.PacketConn, reply func(msg string, from net.Addr) string) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if out := reply(string(buf[:n]), from); out != "" {
			pc.WriteTo([]byte(out), from)
		}
	}
}
