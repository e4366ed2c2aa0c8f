package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandler(t *testing.T) {
	if w := get(t, http.MethodGet, "/dashboard"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != Prefix {
		t.Errorf("GET /dashboard: %d to %q, want a redirect to %s", w.Code, w.Header().Get("Location"), Prefix)
	}
	if w := get(t, http.MethodPost, Prefix); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", Prefix, w.Code)
	}
	w := get(t, http.MethodGet, Prefix)
	if !Built() {
		// `go test` without `make dashboard`: the page says how to build it.
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "make build") {
			t.Errorf("GET %s from a binary without the page: %d %q", Prefix, w.Code, w.Body.String())
		}
		return
	}
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<div id="app">`) {
		t.Fatalf("GET %s: %d %.200q", Prefix, w.Code, w.Body.String())
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html Cache-Control %q, want no-cache (it names the hashed assets)", cc)
	}
	// The page's script, named by its hash, is cached for good.
	i := strings.Index(w.Body.String(), "/dashboard/assets/")
	if i < 0 {
		t.Fatalf("index.html names no asset: %s", w.Body.String())
	}
	asset := w.Body.String()[i:]
	asset = asset[:strings.IndexByte(asset, '"')]
	a := get(t, http.MethodGet, asset)
	if a.Code != http.StatusOK || !strings.Contains(a.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("GET %s: %d, Cache-Control %q", asset, a.Code, a.Header().Get("Cache-Control"))
	}
	if w := get(t, http.MethodGet, Prefix+"assets/missing.js"); w.Code != http.StatusNotFound {
		t.Errorf("a missing asset: %d, want 404", w.Code)
	}
	if w := get(t, http.MethodGet, Prefix+"../../etc/passwd"); w.Code == http.StatusOK && !strings.Contains(w.Body.String(), `<div id="app">`) {
		t.Errorf("a path out of the page's files was served: %.100q", w.Body.String())
	}
}
