package authz

import (
	"net/http"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// policyBuilder builds an AuthorizationPolicy:
// policy("shop", "deny-web").Deny().Selector("app", "web").Rules(...).Obj().
type policyBuilder struct{ p v1alpha1.AuthorizationPolicy }

func policy(ns, name string) *policyBuilder {
	return &policyBuilder{p: v1alpha1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
}

func (b *policyBuilder) Action(a v1alpha1.Action) *policyBuilder { b.p.Spec.Action = a; return b }
func (b *policyBuilder) Allow() *policyBuilder                   { return b.Action(v1alpha1.ActionAllow) }
func (b *policyBuilder) Deny() *policyBuilder                    { return b.Action(v1alpha1.ActionDeny) }

// Selector sets matchLabels from key, value pairs (none: an empty selector).
func (b *policyBuilder) Selector(kv ...string) *policyBuilder {
	b.p.Spec.Selector = selector(kv...)
	return b
}

func (b *policyBuilder) TargetRef(kind, name string) *policyBuilder {
	b.p.Spec.TargetRefs = append(b.p.Spec.TargetRefs, v1alpha1.PolicyTargetReference{Kind: kind, Name: name})
	return b
}

func (b *policyBuilder) Rules(rs ...*ruleBuilder) *policyBuilder {
	for _, r := range rs {
		b.p.Spec.Rules = append(b.p.Spec.Rules, r.r)
	}
	return b
}

func (b *policyBuilder) Obj() *v1alpha1.AuthorizationPolicy { p := b.p; return &p }

func selector(kv ...string) *v1alpha1.WorkloadSelector {
	s := &v1alpha1.WorkloadSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

// ruleBuilder builds a Rule: rule().From(src).To(op).When("source.ip", "10.0.0.0/8").
type ruleBuilder struct{ r v1alpha1.Rule }

func rule() *ruleBuilder { return &ruleBuilder{} }

func (b *ruleBuilder) From(sources ...v1alpha1.Source) *ruleBuilder {
	for _, s := range sources {
		b.r.From = append(b.r.From, v1alpha1.RuleFrom{Source: s})
	}
	return b
}

func (b *ruleBuilder) To(ops ...v1alpha1.Operation) *ruleBuilder {
	for _, o := range ops {
		b.r.To = append(b.r.To, v1alpha1.RuleTo{Operation: o})
	}
	return b
}

func (b *ruleBuilder) When(key string, values ...string) *ruleBuilder {
	b.r.When = append(b.r.When, v1alpha1.Condition{Key: key, Values: values})
	return b
}

func (b *ruleBuilder) WhenNot(key string, notValues ...string) *ruleBuilder {
	b.r.When = append(b.r.When, v1alpha1.Condition{Key: key, NotValues: notValues})
	return b
}

// peerBuilder builds a PeerAuthentication:
// peer("shop", "strict").Mode("STRICT").Selector("app", "web").Port("8080", "DISABLE").Created(2).Obj().
type peerBuilder struct{ pa v1alpha1.PeerAuthentication }

// epoch is when test objects are created, give or take Created's minutes.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func peer(ns, name string) *peerBuilder {
	return &peerBuilder{pa: v1alpha1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(epoch),
	}}}
}

// Mode sets spec.mtls.mode ("" leaves mtls absent).
func (b *peerBuilder) Mode(m v1alpha1.MutualTLSMode) *peerBuilder {
	if m != "" {
		b.pa.Spec.MTLS = &v1alpha1.MutualTLS{Mode: m}
	}
	return b
}

func (b *peerBuilder) Selector(kv ...string) *peerBuilder {
	b.pa.Spec.Selector = selector(kv...)
	return b
}

func (b *peerBuilder) Port(port string, m v1alpha1.MutualTLSMode) *peerBuilder {
	if b.pa.Spec.PortLevelMTLS == nil {
		b.pa.Spec.PortLevelMTLS = map[string]v1alpha1.MutualTLS{}
	}
	b.pa.Spec.PortLevelMTLS[port] = v1alpha1.MutualTLS{Mode: m}
	return b
}

// Created sets the creation time minutes after epoch.
func (b *peerBuilder) Created(minutes int) *peerBuilder {
	b.pa.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(minutes) * time.Minute))
	return b
}

func (b *peerBuilder) Obj() *v1alpha1.PeerAuthentication { pa := b.pa; return &pa }

// requestBuilder builds a Request; request() is an authenticated HTTP GET
// from shop's frontend to port 8080 of a backend pod.
type requestBuilder struct{ r Request }

func request() *requestBuilder {
	return &requestBuilder{r: Request{
		SourcePrincipal: "cluster.local/ns/shop/sa/frontend",
		SourceIP:        netip.MustParseAddr("10.42.0.7"),
		DestinationPort: 8080,
		HTTP:            true,
		Method:          "GET",
		Path:            "/api/items",
		Host:            "backend.shop.svc.cluster.local",
		Headers:         http.Header{},
	}}
}

// TCP makes it a plain TCP connection: no method, path, host or headers.
func (b *requestBuilder) TCP() *requestBuilder {
	b.r.HTTP, b.r.Method, b.r.Path, b.r.Host, b.r.Headers = false, "", "", "", nil
	return b
}

// Plaintext drops the peer's identity.
func (b *requestBuilder) Plaintext() *requestBuilder {
	b.r.SourcePrincipal, b.r.SourceNamespace = "", ""
	return b
}

func (b *requestBuilder) Principal(p string) *requestBuilder  { b.r.SourcePrincipal = p; return b }
func (b *requestBuilder) Namespace(ns string) *requestBuilder { b.r.SourceNamespace = ns; return b }
func (b *requestBuilder) IP(ip string) *requestBuilder {
	b.r.SourceIP = netip.MustParseAddr(ip)
	return b
}
func (b *requestBuilder) Port(p int) *requestBuilder         { b.r.DestinationPort = p; return b }
func (b *requestBuilder) Method(m string) *requestBuilder    { b.r.Method = m; return b }
func (b *requestBuilder) Path(p string) *requestBuilder      { b.r.Path = p; return b }
func (b *requestBuilder) Host(h string) *requestBuilder      { b.r.Host = h; return b }
func (b *requestBuilder) Header(k, v string) *requestBuilder { b.r.Headers.Add(k, v); return b }
func (b *requestBuilder) Obj() Request                       { return b.r }
