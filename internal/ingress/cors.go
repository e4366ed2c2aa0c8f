package ingress

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// CORS is an HTTPRoute rule's CORS filter: the proxy answers preflight
// requests itself and adds the CORS headers to the backend's answers to
// cross-origin requests.
type CORS struct {
	origins     []*regexp.Regexp // allowOrigins; "*" wildcards match greedily, to the left too
	credentials bool
	methods     []string // "*" allows any
	headers     []string // "*" allows any
	expose      []string
	maxAge      int // seconds
}

// defaultCORSMaxAge is Access-Control-Max-Age when maxAge is unset.
const defaultCORSMaxAge = 5

func newCORS(f *gwv1.HTTPCORSFilter) *CORS {
	if f == nil {
		return nil
	}
	c := &CORS{credentials: ptrValue(f.AllowCredentials), maxAge: int(f.MaxAge)}
	if c.maxAge == 0 {
		c.maxAge = defaultCORSMaxAge
	}
	for _, o := range f.AllowOrigins {
		expr := strings.ReplaceAll(regexp.QuoteMeta(string(o)), `\*`, `.*`)
		c.origins = append(c.origins, regexp.MustCompile(`(?i)^`+expr+`$`))
	}
	for _, m := range f.AllowMethods {
		c.methods = append(c.methods, string(m))
	}
	for _, h := range f.AllowHeaders {
		c.headers = append(c.headers, string(h))
	}
	for _, h := range f.ExposeHeaders {
		c.expose = append(c.expose, string(h))
	}
	return c
}

func (c *CORS) allows(origin string) bool {
	return slices.ContainsFunc(c.origins, func(re *regexp.Regexp) bool { return re.MatchString(origin) })
}

// preflight answers r when it is a CORS preflight request (OPTIONS with
// Origin and Access-Control-Request-Method), and tells whether it did. An
// origin not allowed gets 204 without CORS headers, which the browser
// refuses.
func (c *CORS) preflight(w http.ResponseWriter, r *http.Request) bool {
	origin, method := r.Header.Get("Origin"), r.Header.Get("Access-Control-Request-Method")
	if c == nil || r.Method != http.MethodOptions || origin == "" || method == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if !c.allows(origin) {
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	c.allowOrigin(h, origin)
	if len(c.methods) > 0 {
		// A wildcard is answered with the method asked for: a client
		// sending credentials may not be answered "*".
		if slices.Contains(c.methods, "*") {
			h.Set("Access-Control-Allow-Methods", method)
		} else {
			h.Set("Access-Control-Allow-Methods", strings.Join(c.methods, ", "))
		}
	}
	if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" && len(c.headers) > 0 {
		if slices.Contains(c.headers, "*") {
			h.Set("Access-Control-Allow-Headers", asked)
		} else {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.headers, ", "))
		}
	}
	c.exposeHeaders(h)
	h.Set("Access-Control-Max-Age", strconv.Itoa(c.maxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}

// respond adds the CORS headers to a backend's answer to a request from
// origin (none when it is not allowed).
func (c *CORS) respond(h http.Header, origin string) {
	if c == nil || origin == "" {
		return
	}
	h.Add("Vary", "Origin")
	if !c.allows(origin) {
		return
	}
	c.allowOrigin(h, origin)
	c.exposeHeaders(h)
}

// allowOrigin names the origin itself, never "*": that is valid with and
// without credentials.
func (c *CORS) allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

func (c *CORS) exposeHeaders(h http.Header) {
	if len(c.expose) == 0 || (c.credentials && slices.Contains(c.expose, "*")) {
		return
	}
	h.Set("Access-Control-Expose-Headers", strings.Join(c.expose, ", "))
}
