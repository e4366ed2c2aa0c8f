package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestHostnameHandler(t *testing.T) {
	for _, target := range []string{"/", "/anything?x=1"} {
		if code, body := get(t, hostnameHandler("web-0"), target); code != http.StatusOK || body != "web-0" {
			t.Errorf("GET %s = %d %q, want 200 web-0", target, code, body)
		}
	}
}

// serve runs srv on a fresh context and stops it when the test ends.
func serve(t *testing.T, srv func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestServeTCPHostname(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return serveTCPHostname(ctx, l, "web-0") })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "web-0" {
		t.Errorf("read %q, %v; want web-0", b, err)
	}
}

func TestServeUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error {
		return serveUDP(ctx, pc, func(msg string, from net.Addr) string { return udpReply("web-0", msg, from) })
	})
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("echo ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Errorf("read %q, %v; want ping", buf[:n], err)
	}
}

func TestServeHTTPStopsOnCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return serveHTTP(ctx, l, hostnameHandler("web-0")) })
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "web-0" {
		t.Errorf("body %q, want web-0", b)
	}
}
