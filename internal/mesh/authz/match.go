package authz

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// input is a Request prepared for matching.
type input struct {
	Request
	// principal is SourcePrincipal without "spiffe://"; namespace is the
	// peer's namespace, empty without a principal.
	principal, namespace string
	// path is Path without its query string; host is Host in lower case.
	path, host string
}

func newInput(req Request) *input {
	in := &input{Request: req, principal: strings.TrimPrefix(req.SourcePrincipal, "spiffe://")}
	if in.principal != "" {
		in.namespace = req.SourceNamespace
		if in.namespace == "" {
			in.namespace = principalNamespace(in.principal)
		}
	}
	in.path, _, _ = strings.Cut(req.Path, "?")
	in.host = strings.ToLower(req.Host)
	in.SourceIP = req.SourceIP.Unmap()
	return in
}

// principalNamespace is NS in "TRUST_DOMAIN/ns/NS/sa/SA".
func principalNamespace(principal string) string {
	_, rest, ok := strings.Cut(principal, "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

// policyMatches reports whether one of p's rules matches. allow is p's
// action being ALLOW: a rule with a field that cannot be evaluated then
// matches nothing; for DENY such fields are ignored.
func (in *input) policyMatches(p *v1alpha1.AuthorizationPolicy, allow bool) bool {
	for i := range p.Spec.Rules {
		var e evaluation
		matched := e.rule(in, &p.Spec.Rules[i])
		if e.unsupported && allow {
			continue
		}
		if matched {
			return true
		}
	}
	return false
}

// verdict is one field's answer.
type verdict int

const (
	match verdict = iota
	noMatch
	// unsupported: the field cannot be evaluated for this request (an
	// HTTP field on plain TCP, a field skiff does not support, a value
	// that does not parse).
	unsupported
)

// evaluation evaluates one rule, every field of it (no short cut), noting
// whether any field was unsupported; unsupported fields count as matching.
type evaluation struct {
	unsupported bool
}

func (e *evaluation) all(vs ...verdict) bool {
	ok := true
	for _, v := range vs {
		switch v {
		case unsupported:
			e.unsupported = true
		case noMatch:
			ok = false
		}
	}
	return ok
}

func (e *evaluation) rule(in *input, r *v1alpha1.Rule) bool {
	from := len(r.From) == 0
	for i := range r.From {
		from = e.source(in, &r.From[i].Source) || from
	}
	to := len(r.To) == 0
	for i := range r.To {
		to = e.operation(in, &r.To[i].Operation) || to
	}
	when := true
	for i := range r.When {
		when = e.all(in.condition(&r.When[i])) && when
	}
	return from && to && when
}

func (e *evaluation) source(in *input, s *v1alpha1.Source) bool {
	return e.all(
		values(s.Principals, s.NotPrincipals, pattern(in.principal)),
		values(s.Namespaces, s.NotNamespaces, pattern(in.namespace)),
		values(s.IPBlocks, s.NotIPBlocks, in.ipBlock),
		values(s.RemoteIPBlocks, s.NotRemoteIPBlocks, in.ipBlock),
		notSupported(s.RequestPrincipals, s.NotRequestPrincipals),
		notSupported(s.ServiceAccounts, s.NotServiceAccounts),
		notSupported(s.TrustDomains, s.NotTrustDomains),
	)
}

func (e *evaluation) operation(in *input, o *v1alpha1.Operation) bool {
	return e.all(
		in.httpValues(o.Hosts, o.NotHosts, in.hostPattern),
		values(o.Ports, o.NotPorts, in.port),
		in.httpValues(o.Methods, o.NotMethods, in.method),
		in.httpValues(o.Paths, o.NotPaths, pattern(in.path)),
	)
}

func (in *input) condition(c *v1alpha1.Condition) verdict {
	switch {
	case c.Key == v1alpha1.KeySourceIP:
		return values(c.Values, c.NotValues, in.ipBlock)
	case c.Key == v1alpha1.KeySourceNamespace:
		return values(c.Values, c.NotValues, pattern(in.namespace))
	case c.Key == v1alpha1.KeySourcePrincipal:
		return values(c.Values, c.NotValues, pattern(in.principal))
	case c.Key == v1alpha1.KeyDestinationPort:
		return values(c.Values, c.NotValues, in.port)
	case strings.HasPrefix(c.Key, v1alpha1.KeyRequestHeaderPrefix) && strings.HasSuffix(c.Key, "]"):
		name := c.Key[len(v1alpha1.KeyRequestHeaderPrefix) : len(c.Key)-1]
		if name == "" || !in.HTTP {
			return unsupported
		}
		return values(c.Values, c.NotValues, in.header(name))
	default:
		return unsupported
	}
}

// httpValues is values for a field of HTTP requests: on plain TCP, set,
// it is unsupported.
func (in *input) httpValues(vals, notVals []string, matches func(v string) (matched, ok bool)) verdict {
	if !in.HTTP {
		return notSupported(vals, notVals)
	}
	return values(vals, notVals, matches)
}

// values is the verdict of a field pair X/notX: with values, the attribute
// must match one; with notValues, none. Both empty matches. matches
// reports whether the attribute matches one value, and false for ok when
// the value cannot be evaluated.
func values(vals, notVals []string, matches func(v string) (matched, ok bool)) verdict {
	out := match
	if len(vals) > 0 {
		matched := false
		for _, v := range vals {
			m, ok := matches(v)
			if !ok {
				return unsupported
			}
			matched = matched || m
		}
		if !matched {
			out = noMatch
		}
	}
	for _, v := range notVals {
		m, ok := matches(v)
		if !ok {
			return unsupported
		}
		if m {
			out = noMatch
		}
	}
	return out
}

// notSupported is the verdict of fields skiff does not evaluate.
func notSupported(vals, notVals []string) verdict {
	if len(vals) > 0 || len(notVals) > 0 {
		return unsupported
	}
	return match
}

// pattern matches attr with Istio's exact, prefix*, *suffix and * forms.
func pattern(attr string) func(string) (bool, bool) {
	return func(p string) (bool, bool) { return matchPattern(p, attr), true }
}

func matchPattern(p, attr string) bool {
	switch {
	case attr == "":
		return false
	case p == "*":
		return true
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(attr, p[1:])
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(attr, p[:len(p)-1])
	default:
		return attr == p
	}
}

func (in *input) hostPattern(p string) (bool, bool) {
	return matchPattern(strings.ToLower(p), in.host), true
}

func (in *input) method(m string) (bool, bool) { return m != "" && m == in.Method, true }

func (in *input) port(s string) (bool, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return false, false
	}
	return n == in.DestinationPort, true
}

func (in *input) ipBlock(s string) (bool, bool) {
	var block netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return false, false
		}
		block = p.Masked()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return false, false
		}
		block = netip.PrefixFrom(a, a.BitLen())
	}
	return in.SourceIP.IsValid() && block.Contains(in.SourceIP), true
}

// header matches the request's header name (its values joined by ",", as
// Envoy sees them); "*" matches when the header is present, even empty.
func (in *input) header(name string) func(string) (bool, bool) {
	vals, present := in.Headers[http.CanonicalHeaderKey(name)]
	joined := strings.Join(vals, ",")
	return func(p string) (bool, bool) {
		if p == "*" {
			return present, true
		}
		return present && matchPattern(p, joined), true
	}
}
