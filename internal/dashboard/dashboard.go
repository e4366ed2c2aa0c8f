package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Prefix is where the dashboard is served.
const Prefix = "/dashboard/"

//go:embed all:dist
var dist embed.FS

// Built reports whether the binary holds the compiled page (a `go build`
// without `make dashboard` does not).
func Built() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// contentSecurityPolicy lets the page load only its own scripts and styles
// and talk only to its own origin (the API server), so that a value shown on
// the page (a label, a log line) cannot run or send anything anywhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page at Prefix: index.html for the page's own routes
// (it routes in the URL's fragment, so only Prefix itself), the hashed
// assets with a year-long cache. /dashboard redirects to Prefix.
func Handler() http.Handler {
	app, err := fs.Sub(dist, "dist/app")
	if err != nil {
		panic(err) // the embed pattern names dist; Sub cannot fail on it
	}
	files := http.FileServer(http.FS(app))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		name := path.Clean("/" + strings.TrimPrefix(r.URL.Path, Prefix))
		if !Built() {
			http.Error(w, "this skiff binary was built without its dashboard: build it with `make build`", http.StatusNotFound)
			return
		}
		if name == "/" || name == "/index.html" {
			h.Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, app, "index.html")
			return
		}
		if strings.HasPrefix(name, "/assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = name
		files.ServeHTTP(w, r2)
	})
}
