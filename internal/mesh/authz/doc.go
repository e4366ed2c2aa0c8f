// Package authz holds the mesh's access decisions: which AuthorizationPolicy
// and PeerAuthentication objects (mesh.skiff.dev, Istio's security API with
// the group changed) apply to a pod, whether they allow a request to it,
// and which mutual TLS mode it has on a port. The functions are pure: no
// I/O, no clock, no goroutines; the node proxy in internal/mesh gathers
// policies from its informers, calls them for each connection or request
// at the destination's node, and enforces the answer.
//
// # Scope
//
// A policy in the root namespace (RootNamespace, kube-system: skiff's
// istio-system) applies to pods of every namespace, any other policy to the
// pods of its own namespace. Its selector's matchLabels must all be on the
// pod; no selector, or an empty one, selects every pod in scope. A policy
// with targetRef or targetRefs (refused at admission) applies to no pod, as
// Istio applies those only to waypoints and gateways.
//
// # Authorization
//
// Evaluate takes the AuthorizationPolicies that apply to the destination
// pod and decides, as Istio does:
//
//  1. if a DENY policy matches the request, it is denied;
//  2. else, if no ALLOW policy applies to the pod, it is allowed;
//  3. else, if an ALLOW policy matches it, it is allowed;
//  4. else it is denied.
//
// A policy matches when one of its rules does; a policy without rules
// matches nothing (so an ALLOW policy without rules denies everything, a
// DENY policy without rules denies nothing). A rule matches when one of its
// sources (from), one of its operations (to) and every condition (when)
// match; an absent list matches anything, so the rule {} matches every
// request. Within a source or an operation, every field that is set must
// match: X when the request's attribute matches one of its values, notX
// when it matches none.
//
// Values match in Istio's four forms: exact ("abc"), prefix ("abc*"),
// suffix ("*abc") and presence ("*": any non-empty value). Principals,
// namespaces, paths and header values compare case-sensitively; hosts
// case-insensitively; methods exactly; ports and destination.port by
// number; ipBlocks, remoteIpBlocks and source.ip by CIDR containment (a
// bare IP is a /32 or /128).
//
// Principals and namespaces come from the peer's mesh certificate: a
// plaintext peer (Request.SourcePrincipal empty) has neither, so it matches
// no principals or namespaces value, not even "*", and matches every
// notPrincipals and notNamespaces. skiff has no trusted proxy hops, so
// remoteIpBlocks match the packet's source address, as Istio's do when no
// trusted proxies are configured.
//
// # Plain TCP
//
// On a connection that is not HTTP (Request.HTTP false), hosts, methods,
// paths (and their not forms) and request.headers conditions have nothing
// to match. As in Istio, a rule of an ALLOW policy that uses any of them
// matches nothing, while in a DENY policy they are ignored, so the rule
// denies more: a DENY rule {to: [{operation: {methods: [POST], ports:
// ["8080"]}}]} denies every TCP connection to port 8080.
//
// The same fail-closed rule covers every field skiff cannot evaluate
// (requestPrincipals, serviceAccounts, trustDomains, an unknown when key,
// a port or IP block that does not parse), which the API server refuses
// anyway: in an ALLOW policy it makes its rule match nothing, in a DENY
// policy it is ignored. A CUSTOM policy (refused too) counts as DENY, an
// AUDIT policy is skipped, as Istio's AUDIT never changes a decision.
//
// Policies are tried in namespace/name order, so the policy a Decision
// names is the same from one call to the next.
//
// # Peer authentication
//
// PeerMode resolves the PeerAuthentications that apply to a pod to its
// mode on one port, as Istio does: the workload's policy (one with a
// selector, in the pod's namespace) beats the namespace's (no selector)
// which beats the mesh's (no selector, in the root namespace); a policy
// with a selector in the root namespace has no effect. Among several
// policies of one level the oldest wins (creationTimestamp, then name). A
// mode UNSET, or no mtls at all, inherits the level above; with nothing
// set the mode is PERMISSIVE. The workload policy's portLevelMtls entry for
// the port, unless UNSET, overrides its mode.
//
// The package does not own the policies' validation (the CRDs' schema and
// CEL rules in internal/mesh/api), path normalization (the proxy hands in
// a normalized Path), or what the node proxy does with a Mode (DISABLE,
// PERMISSIVE and STRICT are answers, not actions; Istio's ambient mode
// ignores DISABLE, skiff's proxy decides for itself).
package authz
