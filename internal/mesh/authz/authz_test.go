package authz

import (
	"strings"
	"testing"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

func TestApplies(t *testing.T) {
	web := map[string]string{"app": "web", "version": "v1"}
	for _, c := range []struct {
		name   string
		policy *v1alpha1.AuthorizationPolicy
		podNS  string
		labels map[string]string
		want   bool
	}{
		{name: "its namespace, no selector", policy: policy("shop", "p").Obj(), podNS: "shop", labels: web, want: true},
		{name: "another namespace", policy: policy("shop", "p").Obj(), podNS: "blog", labels: web},
		{name: "root namespace: every namespace", policy: policy(RootNamespace, "p").Obj(), podNS: "blog", labels: web, want: true},
		{name: "root namespace, selector matches", policy: policy(RootNamespace, "p").Selector("version", "v1").Obj(), podNS: "blog", labels: web, want: true},
		{name: "root namespace, selector does not match", policy: policy(RootNamespace, "p").Selector("version", "v2").Obj(), podNS: "blog", labels: web},
		{name: "selector: every label", policy: policy("shop", "p").Selector("app", "web", "version", "v1").Obj(), podNS: "shop", labels: web, want: true},
		{name: "selector: a label missing", policy: policy("shop", "p").Selector("app", "web", "tier", "front").Obj(), podNS: "shop", labels: web},
		{name: "selector: a value differs", policy: policy("shop", "p").Selector("app", "api").Obj(), podNS: "shop", labels: web},
		{name: "selector: a label with an empty value", policy: policy("shop", "p").Selector("canary", "").Obj(), podNS: "shop", labels: web},
		{name: "empty selector: every pod", policy: policy("shop", "p").Selector().Obj(), podNS: "shop", labels: nil, want: true},
		{name: "a pod in the root namespace", policy: policy(RootNamespace, "p").Obj(), podNS: RootNamespace, labels: web, want: true},
		{name: "targetRefs: waypoints only", policy: policy("shop", "p").TargetRef("Service", "web").Obj(), podNS: "shop", labels: web},
	} {
		if got := Applies(c.policy, RootNamespace, c.podNS, c.labels); got != c.want {
			t.Errorf("%s: Applies = %v; want %v", c.name, got, c.want)
		}
	}
}

func TestPeerAuthenticationApplies(t *testing.T) {
	web := map[string]string{"app": "web"}
	for _, c := range []struct {
		name  string
		pa    *v1alpha1.PeerAuthentication
		podNS string
		want  bool
	}{
		{name: "its namespace", pa: peer("shop", "p").Obj(), podNS: "shop", want: true},
		{name: "another namespace", pa: peer("blog", "p").Obj(), podNS: "shop"},
		{name: "root namespace", pa: peer(RootNamespace, "p").Obj(), podNS: "shop", want: true},
		{name: "selector matches", pa: peer("shop", "p").Selector("app", "web").Obj(), podNS: "shop", want: true},
		{name: "selector does not match", pa: peer("shop", "p").Selector("app", "db").Obj(), podNS: "shop"},
	} {
		if got := PeerAuthenticationApplies(c.pa, RootNamespace, c.podNS, web); got != c.want {
			t.Errorf("%s: PeerAuthenticationApplies = %v; want %v", c.name, got, c.want)
		}
	}
}

// TestEvaluate is the order of decisions: DENY first, then ALLOW, then the
// defaults.
func TestEvaluate(t *testing.T) {
	everything := rule()
	fromBlog := rule().From(v1alpha1.Source{Namespaces: []string{"blog"}})
	fromShop := rule().From(v1alpha1.Source{Namespaces: []string{"shop"}})
	for _, c := range []struct {
		name     string
		policies []*v1alpha1.AuthorizationPolicy
		req      *requestBuilder
		want     Decision
	}{
		{name: "no policy", req: request(),
			want: Decision{Allow: true, Reason: "no ALLOW policy applies"}},
		{name: "ALLOW without rules denies everything", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "allow-nothing").Obj()},
			want:     Decision{Reason: "no ALLOW policy matched"}},
		{name: "ALLOW with the rule {} allows everything", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "allow-all").Allow().Rules(everything).Obj()},
			want:     Decision{Allow: true, Policy: "shop/allow-all", Reason: "allowed by policy shop/allow-all"}},
		{name: "the default action is ALLOW", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "allow-all").Rules(everything).Obj()},
			want:     Decision{Allow: true, Policy: "shop/allow-all", Reason: "allowed by policy shop/allow-all"}},
		{name: "DENY without rules denies nothing", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "deny-nothing").Deny().Obj()},
			want:     Decision{Allow: true, Reason: "no ALLOW policy applies"}},
		{name: "DENY with the rule {} denies everything", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "deny-all").Deny().Rules(everything).Obj()},
			want:     Decision{Policy: "shop/deny-all", Reason: "denied by policy shop/deny-all"}},
		{name: "a matching DENY beats a matching ALLOW", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{
				policy("shop", "a-allow-all").Rules(everything).Obj(),
				policy("shop", "z-deny-shop").Deny().Rules(fromShop).Obj(),
			},
			want: Decision{Policy: "shop/z-deny-shop", Reason: "denied by policy shop/z-deny-shop"}},
		{name: "a DENY that does not match leaves ALLOW to decide", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{
				policy("shop", "deny-blog").Deny().Rules(fromBlog).Obj(),
				policy("shop", "allow-shop").Rules(fromShop).Obj(),
			},
			want: Decision{Allow: true, Policy: "shop/allow-shop", Reason: "allowed by policy shop/allow-shop"}},
		{name: "one ALLOW of several must match", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{
				policy("shop", "allow-blog").Rules(fromBlog).Obj(),
				policy(RootNamespace, "allow-shop").Rules(fromShop).Obj(),
			},
			want: Decision{Allow: true, Policy: RootNamespace + "/allow-shop", Reason: "allowed by policy kube-system/allow-shop"}},
		{name: "no ALLOW matches", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{
				policy("shop", "deny-blog").Deny().Rules(fromBlog).Obj(),
				policy("shop", "allow-blog").Rules(fromBlog).Obj(),
			},
			want: Decision{Reason: "no ALLOW policy matched"}},
		{name: "a policy matches when one of its rules does", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "p").Rules(fromBlog, fromShop).Obj()},
			want:     Decision{Allow: true, Policy: "shop/p", Reason: "allowed by policy shop/p"}},
		{name: "AUDIT never decides", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "audit").Action(v1alpha1.ActionAudit).Rules(everything).Obj()},
			want:     Decision{Allow: true, Reason: "no ALLOW policy applies"}},
		{name: "CUSTOM fails closed, as DENY", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{policy("shop", "ext").Action(v1alpha1.ActionCustom).Rules(everything).Obj()},
			want:     Decision{Policy: "shop/ext", Reason: "denied by policy shop/ext (action CUSTOM is not supported by skiff and counts as DENY)"}},
		{name: "among matching DENYs, the first by namespace/name decides", req: request(),
			policies: []*v1alpha1.AuthorizationPolicy{
				policy("shop", "b").Deny().Rules(everything).Obj(),
				policy("shop", "a").Deny().Rules(everything).Obj(),
				policy(RootNamespace, "z").Deny().Rules(everything).Obj(),
			},
			want: Decision{Policy: "kube-system/z", Reason: "denied by policy kube-system/z"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Evaluate(c.policies, c.req.Obj()); got != c.want {
				t.Errorf("Evaluate = %+v; want %+v", got, c.want)
			}
		})
	}
}

// TestMatch is how each field of a rule matches, through an ALLOW policy
// with that one rule.
func TestMatch(t *testing.T) {
	type src = v1alpha1.Source
	type op = v1alpha1.Operation
	for _, c := range []struct {
		name string
		rule *ruleBuilder
		req  *requestBuilder
		want bool
	}{
		// Principals.
		{name: "principal exact", rule: rule().From(src{Principals: []string{"cluster.local/ns/shop/sa/frontend"}}), req: request(), want: true},
		{name: "principal exact, another", rule: rule().From(src{Principals: []string{"cluster.local/ns/shop/sa/admin"}}), req: request()},
		{name: "principal prefix", rule: rule().From(src{Principals: []string{"cluster.local/ns/shop/*"}}), req: request(), want: true},
		{name: "principal suffix", rule: rule().From(src{Principals: []string{"*/sa/frontend"}}), req: request(), want: true},
		{name: "principal presence", rule: rule().From(src{Principals: []string{"*"}}), req: request(), want: true},
		{name: "a spiffe:// URI is a principal", rule: rule().From(src{Principals: []string{"cluster.local/ns/shop/sa/frontend"}}), req: request().Principal("spiffe://cluster.local/ns/shop/sa/frontend"), want: true},
		{name: "plaintext has no principal, not even *", rule: rule().From(src{Principals: []string{"*"}}), req: request().Plaintext()},
		{name: "plaintext matches notPrincipals", rule: rule().From(src{NotPrincipals: []string{"*/sa/admin"}}), req: request().Plaintext(), want: true},
		{name: "notPrincipals: one matches", rule: rule().From(src{NotPrincipals: []string{"*/sa/admin", "*/sa/frontend"}}), req: request()},
		{name: "principals and notPrincipals", rule: rule().From(src{Principals: []string{"cluster.local/ns/shop/*"}, NotPrincipals: []string{"*/sa/admin"}}), req: request(), want: true},

		// Namespaces.
		{name: "namespace from the principal", rule: rule().From(src{Namespaces: []string{"shop"}}), req: request(), want: true},
		{name: "namespace given", rule: rule().From(src{Namespaces: []string{"team-*"}}), req: request().Principal("cluster.local/ns/x/sa/y").Namespace("team-a"), want: true},
		{name: "namespace needs mTLS", rule: rule().From(src{Namespaces: []string{"shop"}}), req: request().Plaintext().Namespace("shop")},
		{name: "notNamespaces", rule: rule().From(src{NotNamespaces: []string{"blog"}}), req: request(), want: true},
		{name: "notNamespaces matching", rule: rule().From(src{NotNamespaces: []string{"sh*"}}), req: request()},

		// IP blocks.
		{name: "ipBlocks CIDR", rule: rule().From(src{IPBlocks: []string{"10.42.0.0/16"}}), req: request(), want: true},
		{name: "ipBlocks bare IP", rule: rule().From(src{IPBlocks: []string{"10.42.0.7"}}), req: request(), want: true},
		{name: "ipBlocks another IP", rule: rule().From(src{IPBlocks: []string{"10.42.0.8"}}), req: request()},
		{name: "ipBlocks unmasked CIDR", rule: rule().From(src{IPBlocks: []string{"10.42.3.3/16"}}), req: request(), want: true},
		{name: "ipBlocks IPv6", rule: rule().From(src{IPBlocks: []string{"fd00:42::/64"}}), req: request().IP("fd00:42::7"), want: true},
		{name: "ipBlocks IPv4 seen as IPv4-mapped IPv6", rule: rule().From(src{IPBlocks: []string{"10.42.0.0/16"}}), req: request().IP("::ffff:10.42.0.7"), want: true},
		{name: "ipBlocks IPv4 block, IPv6 source", rule: rule().From(src{IPBlocks: []string{"0.0.0.0/0"}}), req: request().IP("fd00::1")},
		{name: "notIpBlocks", rule: rule().From(src{NotIPBlocks: []string{"10.42.0.0/24"}}), req: request()},
		{name: "remoteIpBlocks are the source address", rule: rule().From(src{RemoteIPBlocks: []string{"10.42.0.0/16"}, NotRemoteIPBlocks: []string{"10.42.9.0/24"}}), req: request(), want: true},

		// A source: every field; from: any source.
		{name: "source: every field must match", rule: rule().From(src{Principals: []string{"*"}, Namespaces: []string{"blog"}}), req: request()},
		{name: "from: one source suffices", rule: rule().From(src{Namespaces: []string{"blog"}}, src{IPBlocks: []string{"10.0.0.0/8"}}), req: request(), want: true},
		{name: "from: an empty source matches", rule: rule().From(src{}), req: request().Plaintext(), want: true},

		// Operations.
		{name: "ports", rule: rule().To(op{Ports: []string{"80", "8080"}}), req: request(), want: true},
		{name: "ports, another", rule: rule().To(op{Ports: []string{"80"}}), req: request()},
		{name: "notPorts", rule: rule().To(op{NotPorts: []string{"8080"}}), req: request()},
		{name: "methods exact", rule: rule().To(op{Methods: []string{"HEAD", "GET"}}), req: request(), want: true},
		{name: "methods are case-sensitive", rule: rule().To(op{Methods: []string{"get"}}), req: request()},
		{name: "notMethods", rule: rule().To(op{NotMethods: []string{"POST"}}), req: request(), want: true},
		{name: "paths exact", rule: rule().To(op{Paths: []string{"/api/items"}}), req: request(), want: true},
		{name: "paths: the query is not the path", rule: rule().To(op{Paths: []string{"/api/items"}}), req: request().Path("/api/items?page=2"), want: true},
		{name: "paths prefix", rule: rule().To(op{Paths: []string{"/api/*"}}), req: request(), want: true},
		{name: "paths suffix", rule: rule().To(op{Paths: []string{"*.png"}}), req: request().Path("/img/a.png"), want: true},
		{name: "paths prefix, no match", rule: rule().To(op{Paths: []string{"/admin*"}}), req: request()},
		{name: "notPaths", rule: rule().To(op{NotPaths: []string{"/admin*"}}), req: request(), want: true},
		{name: "paths are case-sensitive", rule: rule().To(op{Paths: []string{"/API/*"}}), req: request()},
		{name: "hosts are case-insensitive", rule: rule().To(op{Hosts: []string{"Backend.Shop.svc.cluster.local"}}), req: request(), want: true},
		{name: "hosts suffix", rule: rule().To(op{Hosts: []string{"*.shop.svc.cluster.local"}}), req: request(), want: true},
		{name: "hosts: the port counts", rule: rule().To(op{Hosts: []string{"backend.shop.svc.cluster.local"}}), req: request().Host("backend.shop.svc.cluster.local:8080")},
		{name: "notHosts", rule: rule().To(op{NotHosts: []string{"*.blog.svc.cluster.local"}}), req: request(), want: true},
		{name: "operation: every field must match", rule: rule().To(op{Methods: []string{"GET"}, Paths: []string{"/admin"}}), req: request()},
		{name: "to: one operation suffices", rule: rule().To(op{Methods: []string{"POST"}}, op{Paths: []string{"/api/*"}}), req: request(), want: true},
		{name: "from and to must both match", rule: rule().From(src{Namespaces: []string{"shop"}}).To(op{Methods: []string{"POST"}}), req: request()},

		// Conditions.
		{name: "when source.ip", rule: rule().When("source.ip", "10.42.0.0/16"), req: request(), want: true},
		{name: "when source.ip, notValues", rule: rule().WhenNot("source.ip", "10.42.0.7"), req: request()},
		{name: "when destination.port", rule: rule().When("destination.port", "8080"), req: request(), want: true},
		{name: "when source.namespace", rule: rule().When("source.namespace", "shop"), req: request(), want: true},
		{name: "when source.namespace, plaintext", rule: rule().When("source.namespace", "*"), req: request().Plaintext()},
		{name: "when source.principal, notValues", rule: rule().WhenNot("source.principal", "*/sa/admin"), req: request(), want: true},
		{name: "when a header", rule: rule().When("request.headers[X-Tenant]", "blue*"), req: request().Header("x-tenant", "blue-1"), want: true},
		{name: "when a header, name in any case", rule: rule().When("request.headers[x-tenant]", "blue"), req: request().Header("X-Tenant", "blue"), want: true},
		{name: "when a header's values, joined", rule: rule().When("request.headers[X-Tenant]", "blue,green"), req: request().Header("X-Tenant", "blue").Header("X-Tenant", "green"), want: true},
		{name: "when a header, absent", rule: rule().When("request.headers[X-Tenant]", "*"), req: request()},
		{name: "when a header, present and empty", rule: rule().When("request.headers[X-Tenant]", "*"), req: request().Header("X-Tenant", ""), want: true},
		{name: "when a header's notValues, absent", rule: rule().WhenNot("request.headers[X-Debug]", "*"), req: request(), want: true},
		{name: "when: every condition must match", rule: rule().When("destination.port", "8080").When("source.ip", "192.168.0.0/16"), req: request()},
		{name: "when and from", rule: rule().From(src{Namespaces: []string{"shop"}}).When("destination.port", "8080"), req: request(), want: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Evaluate([]*v1alpha1.AuthorizationPolicy{policy("shop", "p").Rules(c.rule).Obj()}, c.req.Obj())
			if d.Allow != c.want {
				t.Errorf("matched = %v; want %v (%s)", d.Allow, c.want, d.Reason)
			}
		})
	}
}

// TestUnevaluable is what happens to fields that cannot be evaluated for
// a request, HTTP fields on plain TCP first: a rule of an ALLOW policy that
// has one matches nothing; a DENY policy ignores them.
func TestUnevaluable(t *testing.T) {
	type src = v1alpha1.Source
	type op = v1alpha1.Operation
	deny := func(r *ruleBuilder) []*v1alpha1.AuthorizationPolicy {
		return []*v1alpha1.AuthorizationPolicy{policy("shop", "deny").Deny().Rules(r).Obj()}
	}
	allow := func(rs ...*ruleBuilder) []*v1alpha1.AuthorizationPolicy {
		return []*v1alpha1.AuthorizationPolicy{policy("shop", "allow").Rules(rs...).Obj()}
	}
	for _, c := range []struct {
		name      string
		policies  []*v1alpha1.AuthorizationPolicy
		req       *requestBuilder
		wantAllow bool
	}{
		{name: "TCP, ALLOW on ports", policies: allow(rule().To(op{Ports: []string{"8080"}})), req: request().TCP(), wantAllow: true},
		{name: "TCP, ALLOW on ports and methods", policies: allow(rule().To(op{Ports: []string{"8080"}, Methods: []string{"GET"}})), req: request().TCP()},
		{name: "TCP, ALLOW: an HTTP field in another operation drops the rule", policies: allow(rule().To(op{Ports: []string{"8080"}}, op{Paths: []string{"/x"}})), req: request().TCP()},
		{name: "TCP, ALLOW: other rules still count", policies: allow(rule().To(op{NotMethods: []string{"PUT"}}), rule().To(op{Ports: []string{"8080"}})), req: request().TCP(), wantAllow: true},
		{name: "TCP, ALLOW on hosts", policies: allow(rule().To(op{NotHosts: []string{"x"}})), req: request().TCP()},
		{name: "TCP, ALLOW on a header", policies: allow(rule().WhenNot("request.headers[X-Debug]", "*")), req: request().TCP()},
		{name: "HTTP, DENY POST on 8080, a GET", policies: deny(rule().To(op{Methods: []string{"POST"}, Ports: []string{"8080"}})), req: request(), wantAllow: true},
		{name: "TCP, DENY POST on 8080, port 8080", policies: deny(rule().To(op{Methods: []string{"POST"}, Ports: []string{"8080"}})), req: request().TCP()},
		{name: "TCP, DENY POST on 8080, port 9090", policies: deny(rule().To(op{Methods: []string{"POST"}, Ports: []string{"8080"}})), req: request().TCP().Port(9090), wantAllow: true},
		{name: "TCP, DENY POST denies every connection", policies: deny(rule().To(op{Methods: []string{"POST"}})), req: request().TCP()},
		{name: "TCP, DENY on a header and a namespace", policies: deny(rule().From(src{Namespaces: []string{"blog"}}).When("request.headers[X-Debug]", "1")), req: request().TCP(), wantAllow: true},
		{name: "TCP, DENY on a header and a namespace, from it", policies: deny(rule().From(src{Namespaces: []string{"shop"}}).When("request.headers[X-Debug]", "1")), req: request().TCP()},

		// Fields the API server refuses, should one get through.
		{name: "ALLOW on requestPrincipals", policies: allow(rule().From(src{RequestPrincipals: []string{"*"}})), req: request()},
		{name: "DENY on requestPrincipals ignores them", policies: deny(rule().From(src{RequestPrincipals: []string{"*"}})), req: request()},
		{name: "ALLOW on serviceAccounts", policies: allow(rule().From(src{ServiceAccounts: []string{"shop/frontend"}})), req: request()},
		{name: "ALLOW on trustDomains", policies: allow(rule().From(src{NotTrustDomains: []string{"other"}})), req: request()},
		{name: "ALLOW on a JWT claim", policies: allow(rule().When("request.auth.claims[iss]", "x")), req: request()},
		{name: "DENY on a JWT claim ignores it", policies: deny(rule().When("request.auth.claims[iss]", "x")), req: request()},
		{name: "ALLOW on an IP block that does not parse", policies: allow(rule().From(src{NotIPBlocks: []string{"10.0.0.0/33"}})), req: request()},
		{name: "ALLOW on a port that does not parse", policies: allow(rule().To(op{Ports: []string{"http"}})), req: request()},
		{name: "ALLOW on an empty header name", policies: allow(rule().WhenNot("request.headers[]", "x")), req: request()},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Evaluate(c.policies, c.req.Obj())
			if d.Allow != c.wantAllow {
				t.Errorf("Evaluate = %+v; want Allow %v", d, c.wantAllow)
			}
			if !d.Allow && d.Policy == "" && !strings.Contains(d.Reason, "no ALLOW policy matched") {
				t.Errorf("denied without a policy, reason %q", d.Reason)
			}
		})
	}
}

func TestEvaluateDoesNotReorderItsInput(t *testing.T) {
	in := []*v1alpha1.AuthorizationPolicy{policy("shop", "b").Obj(), policy("shop", "a").Obj()}
	Evaluate(in, request().Obj())
	if in[0].Name != "b" {
		t.Errorf("Evaluate sorted its input")
	}
}

func TestPeerMode(t *testing.T) {
	const (
		unset      = v1alpha1.MTLSUnset
		disable    = v1alpha1.MTLSDisable
		permissive = v1alpha1.MTLSPermissive
		strict     = v1alpha1.MTLSStrict
	)
	web := map[string]string{"app": "web"}
	for _, c := range []struct {
		name  string
		pas   []*v1alpha1.PeerAuthentication
		podNS string // default "shop"
		port  int    // default 8080
		want  Mode
	}{
		{name: "none: PERMISSIVE", want: ModePermissive},
		{name: "mesh-wide", pas: []*v1alpha1.PeerAuthentication{peer(RootNamespace, "default").Mode(strict).Obj()}, want: ModeStrict},
		{name: "mesh-wide UNSET", pas: []*v1alpha1.PeerAuthentication{peer(RootNamespace, "default").Mode(unset).Obj()}, want: ModePermissive},
		{name: "namespace beats mesh", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "default").Mode(strict).Obj(),
			peer("shop", "default").Mode(permissive).Obj(),
		}, want: ModePermissive},
		{name: "namespace UNSET inherits the mesh's", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "default").Mode(strict).Obj(),
			peer("shop", "default").Mode(unset).Obj(),
		}, want: ModeStrict},
		{name: "namespace without mtls inherits the mesh's", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "default").Mode(disable).Obj(),
			peer("shop", "default").Obj(),
		}, want: ModeDisable},
		{name: "workload beats namespace", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "default").Mode(strict).Obj(),
			peer("shop", "web").Selector("app", "web").Mode(disable).Obj(),
		}, want: ModeDisable},
		{name: "workload UNSET inherits", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "default").Mode(strict).Obj(),
			peer("shop", "web").Selector("app", "web").Mode(unset).Obj(),
		}, want: ModeStrict},
		{name: "port level overrides for its port", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "default").Mode(strict).Obj(),
			peer("shop", "web").Selector("app", "web").Port("8080", disable).Obj(),
		}, want: ModeDisable},
		{name: "port level: another port inherits", port: 9090, pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "default").Mode(strict).Obj(),
			peer("shop", "web").Selector("app", "web").Port("8080", disable).Obj(),
		}, want: ModeStrict},
		{name: "port level UNSET is the workload's mode", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "web").Selector("app", "web").Mode(strict).Port("8080", unset).Obj(),
		}, want: ModeStrict},
		{name: "a selector in the root namespace has no effect", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "web").Selector("app", "web").Mode(strict).Port("8080", strict).Obj(),
		}, want: ModePermissive},
		{name: "an empty selector is namespace-wide", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "all").Selector().Mode(strict).Obj(),
			peer(RootNamespace, "default").Mode(disable).Obj(),
		}, want: ModeStrict},
		{name: "policies that do not apply are skipped", pas: []*v1alpha1.PeerAuthentication{
			peer("blog", "default").Mode(strict).Obj(),
			peer("shop", "db").Selector("app", "db").Mode(strict).Obj(),
		}, want: ModePermissive},
		{name: "namespace level: the oldest wins", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "a-new").Mode(strict).Created(5).Obj(),
			peer("shop", "z-old").Mode(disable).Created(1).Obj(),
		}, want: ModeDisable},
		{name: "namespace level: same age, the first name wins", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "b").Mode(strict).Obj(),
			peer("shop", "a").Mode(disable).Obj(),
		}, want: ModeDisable},
		{name: "workload level: the oldest wins, ports included", pas: []*v1alpha1.PeerAuthentication{
			peer("shop", "new").Selector("app", "web").Mode(disable).Port("8080", disable).Created(5).Obj(),
			peer("shop", "old").Selector("app", "web").Mode(strict).Created(1).Obj(),
		}, want: ModeStrict},
		{name: "mesh level: the oldest wins", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "new").Mode(disable).Created(5).Obj(),
			peer(RootNamespace, "old").Mode(strict).Created(1).Obj(),
		}, want: ModeStrict},
		{name: "an older UNSET still wins its level", pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "default").Mode(strict).Obj(),
			peer("shop", "old").Mode(unset).Created(1).Obj(),
			peer("shop", "new").Mode(disable).Created(5).Obj(),
		}, want: ModeStrict},
		{name: "a pod in the root namespace", podNS: RootNamespace, pas: []*v1alpha1.PeerAuthentication{
			peer(RootNamespace, "default").Mode(strict).Obj(),
			peer(RootNamespace, "web").Selector("app", "web").Mode(disable).Obj(),
		}, want: ModeStrict},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns, port := c.podNS, c.port
			if ns == "" {
				ns = "shop"
			}
			if port == 0 {
				port = 8080
			}
			if got := PeerMode(c.pas, RootNamespace, ns, web, port); got != c.want {
				t.Errorf("PeerMode = %s; want %s", got, c.want)
			}
		})
	}
}
