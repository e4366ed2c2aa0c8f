package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// upstream is an HTTPS server that takes tunnels for cluster "east" from
// clients with the token "good".
func upstream(t *testing.T, reg *Registry) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path || r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, "not a fleet cluster's agent", http.StatusUnauthorized)
			return
		}
		if err := reg.Accept(t.Context(), w, r, "east"); err != nil {
			t.Errorf("Accept: %v", err)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func clientTLS(srv *httptest.Server) *tls.Config {
	return srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func TestTunnelCarriesRequestsBothWays(t *testing.T) {
	reg := NewRegistry()
	srv := upstream(t, reg)
	// The agent's side answers with what it was asked.
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" as "+r.Header.Get("Impersonate-User"))
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Dial(ctx, srv.URL, clientTLS(srv), "good", agent) }()

	var rt http.RoundTripper
	deadline := time.Now().Add(5 * time.Second)
	for rt == nil && time.Now().Before(deadline) {
		rt, _ = reg.Transport("east")
		time.Sleep(10 * time.Millisecond)
	}
	if rt == nil {
		t.Fatal("no tunnel for east after 5s")
	}
	if _, ok := reg.Transport("west"); ok {
		t.Error("a tunnel for west, which never dialed")
	}
	for _, path := range []string{"/api/v1/pods?limit=1", "/apis/apps/v1/namespaces/a/deployments/b"} {
		req, _ := http.NewRequest(http.MethodGet, "https://east"+path, nil)
		req.Header.Set("Impersonate-User", "alice")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("through the tunnel: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "GET " + path + " as alice"; string(body) != want {
			t.Errorf("the agent saw %q, want %q", body, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Dial after its context ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Dial did not return once its context ended")
	}
}

func TestTunnelRefused(t *testing.T) {
	srv := upstream(t, NewRegistry())
	err := Dial(t.Context(), srv.URL, clientTLS(srv), "bad", http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "not a fleet cluster's agent") {
		t.Fatalf("Dial with a bad token = %v; want the upstream's 401 and its message", err)
	}
}

// A handshake the upstream never answers ends with the context, not never.
func TestTunnelHandshakeEndsWithContext(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := Dial(ctx, srv.URL, clientTLS(srv), "good", http.NotFoundHandler())
	if err == nil || time.Since(began) > 5*time.Second {
		t.Fatalf("Dial to a silent upstream = %v after %s; want an error once the context ends", err, time.Since(began))
	}
}
