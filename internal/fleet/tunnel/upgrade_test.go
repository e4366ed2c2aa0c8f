package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An upgrade (as exec and port-forward make) crosses the tunnel: the
// downstream's HTTP/1.1 server switches protocols and echoes what it reads
// in upper case; a refusal comes back as an ordinary response.
func TestUpgradeThroughTunnel(t *testing.T) {
	// The downstream API server.
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer agent" || r.Header.Get("Impersonate-User") != "alice" {
			http.Error(w, "forbidden: "+r.Header.Get("Impersonate-User"), http.StatusForbidden)
			return
		}
		if r.Header.Get("Upgrade") != "websocket" || r.URL.Path != "/api/v1/namespaces/a/pods/p/exec" {
			http.Error(w, "bad upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-Websocket-Protocol: v5.channel.k8s.io\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString(strings.ToUpper(line))
			rw.Flush()
		}
	}))
	api.StartTLS()
	defer api.Close()
	apiTLS := clientTLS(api).Clone()
	apiTLS.NextProtos = []string{"http/1.1"}
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ServeUpgrade(w, r, func(ctx context.Context) (net.Conn, error) {
			return (&tls.Dialer{Config: apiTLS}).DialContext(ctx, "tcp", api.Listener.Addr().String())
		}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer agent") })
	})

	reg := NewRegistry()
	up := upstream(t, reg)
	go func() { _ = Dial(t.Context(), up.URL, clientTLS(up), "good", agent) }()
	var rt http.RoundTripper
	for deadline := time.Now().Add(5 * time.Second); rt == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		rt, _ = reg.Transport("east")
	}
	if rt == nil {
		t.Fatal("no tunnel for east after 5s")
	}
	// The upstream's proxy path, as a plain HTTP/1.1 server.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host, out.Host = "https", "east", "east"
		out.Header.Set("Impersonate-User", r.URL.Query().Get("as"))
		if err := ProxyUpgrade(w, r, rt, out); err != nil {
			t.Errorf("ProxyUpgrade: %v", err)
		}
	}))
	defer proxy.Close()

	call := func(as string) (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := net.Dial("tcp", proxy.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /api/v1/namespaces/a/pods/p/exec?as="+as+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly bytes\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return conn, br, resp
	}
	conn, br, resp := call("alice")
	defer conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Sec-Websocket-Protocol") != "v5.channel.k8s.io" {
		t.Fatalf("switch: %s %v", resp.Status, resp.Header)
	}
	for _, want := range []string{"EARLY BYTES\n"} {
		if got, err := br.ReadString('\n'); err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	io.WriteString(conn, "second line\n")
	if got, err := br.ReadString('\n'); err != nil || got != "SECOND LINE\n" {
		t.Fatalf("read %q, %v", got, err)
	}

	conn2, _, resp := call("mallory")
	defer conn2.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "forbidden: mallory") {
		t.Errorf("refused upgrade: %s %q; want the API server's 403", resp.Status, body)
	}
}
