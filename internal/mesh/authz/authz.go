package authz

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// RootNamespace is skiff's mesh root namespace, its equivalent of Istio's
// istio-system: policies there apply to every namespace.
const RootNamespace = "kube-system"

// Request is what the node proxy knows of a connection, or of one HTTP
// request on it, to a pod of its node.
type Request struct {
	// SourcePrincipal is the peer's identity from its mesh certificate, in
	// the form Istio writes principals: "cluster.local/ns/NS/sa/SA" (a
	// leading "spiffe://" is ignored). Empty when the peer is not
	// authenticated (plaintext).
	SourcePrincipal string
	// SourceNamespace is the namespace in SourcePrincipal; empty, it is
	// read from SourcePrincipal. It counts only with a SourcePrincipal:
	// like Istio's, namespace matches need mutual TLS.
	SourceNamespace string
	// SourceIP is the packet's source address. The zero Addr is in no IP
	// block.
	SourceIP netip.Addr
	// DestinationPort is the pod's port the connection is to.
	DestinationPort int
	// HTTP says the fields below are known: the proxy parsed an HTTP
	// request. False for plain TCP (see the package doc).
	HTTP bool
	// Method is the HTTP method ("GET").
	Method string
	// Path is the request's path, normalized by the proxy; a query string
	// is ignored.
	Path string
	// Host is the request's Host or :authority, as sent (port included if
	// any).
	Host string
	// Headers are the request's headers, keyed in net/http's canonical
	// form (as http.Header.Add and net/http's parsing key them).
	Headers http.Header
}

// Decision is Evaluate's answer.
type Decision struct {
	// Allow says whether the request may proceed.
	Allow bool
	// Policy is NAMESPACE/NAME of the policy that decided; empty when no
	// policy matched and the default decided.
	Policy string
	// Reason says why, for logs and events: "denied by policy
	// default/deny-web", "no ALLOW policy matched", ….
	Reason string
}

// Applies reports whether p applies to a pod of podNamespace with
// podLabels: p is in podNamespace or in rootNamespace, its selector's
// labels are all on the pod, and it has no targetRef(s).
func Applies(p *v1alpha1.AuthorizationPolicy, rootNamespace, podNamespace string, podLabels map[string]string) bool {
	if p.Spec.TargetRef != nil || len(p.Spec.TargetRefs) > 0 {
		return false
	}
	return inScope(p.Namespace, p.Spec.Selector, rootNamespace, podNamespace, podLabels)
}

// PeerAuthenticationApplies is Applies for a PeerAuthentication. (Whether
// it then counts is PeerMode's business: one with a selector in the root
// namespace applies but has no effect.)
func PeerAuthenticationApplies(pa *v1alpha1.PeerAuthentication, rootNamespace, podNamespace string, podLabels map[string]string) bool {
	return inScope(pa.Namespace, pa.Spec.Selector, rootNamespace, podNamespace, podLabels)
}

func inScope(policyNamespace string, sel *v1alpha1.WorkloadSelector, rootNamespace, podNamespace string, podLabels map[string]string) bool {
	if policyNamespace != podNamespace && policyNamespace != rootNamespace {
		return false
	}
	if sel == nil {
		return true
	}
	for k, v := range sel.MatchLabels {
		if got, ok := podLabels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Evaluate decides req against policies, the AuthorizationPolicies that
// apply to its destination pod (see Applies), with Istio's semantics: the
// package doc is the specification.
func Evaluate(policies []*v1alpha1.AuthorizationPolicy, req Request) Decision {
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, b *v1alpha1.AuthorizationPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	in := newInput(req)

	var allows []*v1alpha1.AuthorizationPolicy
	for _, p := range sorted {
		switch p.Spec.Action {
		case v1alpha1.ActionAllow, "":
			allows = append(allows, p)
		case v1alpha1.ActionAudit:
			// Istio's AUDIT marks requests for a plugin; it never decides.
		case v1alpha1.ActionDeny:
			if in.policyMatches(p, false) {
				return Decision{Policy: key(p), Reason: "denied by policy " + key(p)}
			}
		default:
			// CUSTOM (refused at admission) asks an external authorizer
			// skiff does not have: fail closed, as a DENY.
			if in.policyMatches(p, false) {
				return Decision{Policy: key(p), Reason: "denied by policy " + key(p) + " (action " + string(p.Spec.Action) + " is not supported by skiff and counts as DENY)"}
			}
		}
	}
	if len(allows) == 0 {
		return Decision{Allow: true, Reason: "no ALLOW policy applies"}
	}
	for _, p := range allows {
		if in.policyMatches(p, true) {
			return Decision{Allow: true, Policy: key(p), Reason: "allowed by policy " + key(p)}
		}
	}
	return Decision{Reason: "no ALLOW policy matched"}
}

// key is NAMESPACE/NAME.
func key(p *v1alpha1.AuthorizationPolicy) string { return p.Namespace + "/" + p.Name }
