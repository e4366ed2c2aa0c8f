package component

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPublicFirst(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(name)) })
	}
	h := publicFirst(APIServerHandlers{
		Public:        map[string]http.Handler{"/dashboard/": named("page")},
		Authenticated: map[string]http.Handler{"/dashboard/api/": named("unused: served by the chain's mux")},
	}, named("chain"))
	for path, want := range map[string]string{
		"/dashboard/":                   "page",
		"/dashboard":                    "page",
		"/dashboard/assets/x.js":        "page",
		"/dashboard/api/v1/usage/nodes": "chain", // authenticated: through the chain
		"/api/v1/pods":                  "chain",
		"/dashboardx":                   "chain",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if got := w.Body.String(); got != want {
			t.Errorf("%s served by %q, want %q", path, got, want)
		}
	}
}
