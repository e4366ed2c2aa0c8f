package ingress

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Algorithm is how a backend's requests are spread over its endpoints.
type Algorithm string

// The load-balancing algorithms of the skiff.dev/load-balance annotation.
const (
	RoundRobin       Algorithm = "round-robin"
	LeastConnections Algorithm = "least-connections"
	LeastRequest     Algorithm = "least-request"
	Random           Algorithm = "random"
	ConsistentHash   Algorithm = "consistent-hash"
)

// HashSource is what a consistent-hash key is taken from.
type HashSource string

// The sources of the skiff.dev/hash-on annotation.
const (
	HashHeader   HashSource = "header"
	HashCookie   HashSource = "cookie"
	HashClientIP HashSource = "client-ip"
)

// Policy is the per-Ingress proxying configuration read from annotations.
type Policy struct {
	Balance Algorithm
	// HashOn and HashName (a header or cookie name) give consistent-hash
	// keys; client-ip when unset.
	HashOn   HashSource
	HashName string
	// AffinityCookie, when set, pins clients to an endpoint with a cookie
	// of that name.
	AffinityCookie string
	// ReadTimeout bounds the wait for an upstream's response headers.
	ReadTimeout time.Duration
	// RetryBudget bounds the retries of routes' retry policies (zero:
	// unbounded but by their attempts).
	RetryBudget RetryBudget
}

func (p Policy) String() string {
	s := string(p.Balance)
	if p.Balance == ConsistentHash {
		s += " hash-on=" + string(p.HashOn)
		if p.HashName != "" {
			s += ":" + p.HashName
		}
	}
	if p.AffinityCookie != "" {
		s += " affinity-cookie=" + p.AffinityCookie
	}
	s += " read-timeout=" + p.ReadTimeout.String()
	if p.RetryBudget != (RetryBudget{}) {
		s += " retry-budget=" + p.RetryBudget.String()
	}
	return s
}

// parsePolicy reads the skiff.dev annotations; an invalid value is reported
// and its default used.
func parsePolicy(ann map[string]string) (Policy, []error) {
	p := Policy{Balance: RoundRobin, ReadTimeout: DefaultReadTimeout}
	var errs []error
	if v, ok := ann[AnnLoadBalance]; ok {
		switch a := Algorithm(strings.TrimSpace(v)); a {
		case RoundRobin, LeastConnections, LeastRequest, Random, ConsistentHash:
			p.Balance = a
		default:
			errs = append(errs, fmt.Errorf("annotation %s: unknown algorithm %q, using round-robin", AnnLoadBalance, v))
		}
	}
	if p.Balance == ConsistentHash {
		p.HashOn = HashClientIP
		if v, ok := ann[AnnHashOn]; ok {
			src, name, _ := strings.Cut(strings.TrimSpace(v), ":")
			switch s := HashSource(src); {
			case s == HashClientIP && name == "":
				p.HashOn = s
			case (s == HashHeader || s == HashCookie) && name != "":
				p.HashOn, p.HashName = s, name
			default:
				errs = append(errs, fmt.Errorf("annotation %s: %q is not header:NAME, cookie:NAME or client-ip; hashing on client-ip", AnnHashOn, v))
			}
		}
	}
	if v, ok := ann[AnnAffinity]; ok {
		if v == "cookie" {
			p.AffinityCookie = DefaultAffinityCookie
			if n := ann[AnnAffinityCookie]; n != "" {
				p.AffinityCookie = n
			}
		} else {
			errs = append(errs, fmt.Errorf("annotation %s: %q is not \"cookie\"", AnnAffinity, v))
		}
	}
	if v, ok := ann[AnnReadTimeout]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			// ingress-nginx users write bare seconds.
			if n, nerr := strconv.Atoi(v); nerr == nil {
				d, err = time.Duration(n)*time.Second, nil
			}
		}
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("annotation %s: %q is not a positive duration, using %v", AnnReadTimeout, v, DefaultReadTimeout))
		} else {
			p.ReadTimeout = d
		}
	}
	return p, errs
}

// parseBool reads a boolean annotation; set tells whether it was given.
func parseBool(ann map[string]string, name string) (v, set bool, err error) {
	s, ok := ann[name]
	if !ok {
		return false, false, nil
	}
	v, err = strconv.ParseBool(s)
	if err != nil {
		return false, false, fmt.Errorf("annotation %s: %q is not true or false", name, s)
	}
	return v, true, nil
}
