package ingress

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestCORS(t *testing.T) {
	c := newCORS(&gwv1.HTTPCORSFilter{
		AllowOrigins:     []gwv1.CORSOrigin{"https://www.foo.com", "https://*.bar.com"},
		AllowMethods:     []gwv1.HTTPMethodWithWildcard{"GET", "OPTIONS"},
		AllowHeaders:     []gwv1.HTTPHeaderName{"x-a"},
		ExposeHeaders:    []gwv1.HTTPHeaderName{"x-b"},
		AllowCredentials: ptr.To(true),
	})
	wild := newCORS(&gwv1.HTTPCORSFilter{AllowOrigins: []gwv1.CORSOrigin{"*"}, AllowMethods: []gwv1.HTTPMethodWithWildcard{"*"}, AllowHeaders: []gwv1.HTTPHeaderName{"*"}, MaxAge: 60})
	preflight := func(c *CORS, origin, method, headers string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodOptions, "/", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			r.Header.Set("Access-Control-Request-Headers", headers)
		}
		w := httptest.NewRecorder()
		if !c.preflight(w, r) {
			t.Fatalf("%s %s: not answered as a preflight", origin, method)
		}
		return w
	}
	for _, tt := range []struct {
		c                               *CORS
		origin, method, headers         string
		allowOrigin, methods, allowHdrs string
		credentials, maxAge             string
	}{
		{c, "https://www.foo.com", "GET", "x-a", "https://www.foo.com", "GET, OPTIONS", "x-a", "true", "5"},
		{c, "https://a.b.bar.com", "GET", "", "https://a.b.bar.com", "GET, OPTIONS", "", "true", "5"},
		{c, "https://bar.com", "GET", "", "", "", "", "", ""},
		{c, "http://www.foo.com", "GET", "", "", "", "", "", ""},
		{wild, "https://x.org:8443", "PUT", "x-1, x-2", "https://x.org:8443", "PUT", "x-1, x-2", "", "60"},
	} {
		w := preflight(tt.c, tt.origin, tt.method, tt.headers)
		h := w.Result().Header
		if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != tt.allowOrigin ||
			h.Get("Access-Control-Allow-Methods") != tt.methods || h.Get("Access-Control-Allow-Headers") != tt.allowHdrs ||
			h.Get("Access-Control-Allow-Credentials") != tt.credentials || h.Get("Access-Control-Max-Age") != tt.maxAge {
			t.Errorf("preflight from %s for %s: %d %v", tt.origin, tt.method, w.Code, h)
		}
	}
	// Not a preflight: GET, or OPTIONS without the request-method header.
	if c.preflight(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) {
		t.Error("a GET was answered as a preflight")
	}
	var none *CORS
	if none.preflight(httptest.NewRecorder(), httptest.NewRequest(http.MethodOptions, "/", nil)) {
		t.Error("a rule without CORS answered a preflight")
	}
	h := http.Header{}
	c.respond(h, "https://www.foo.com")
	if h.Get("Access-Control-Allow-Origin") != "https://www.foo.com" || h.Get("Access-Control-Expose-Headers") != "x-b" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("response headers for an allowed origin: %v", h)
	}
	h = http.Header{}
	c.respond(h, "https://evil.com")
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("response headers for a refused origin: %v", h)
	}
}
