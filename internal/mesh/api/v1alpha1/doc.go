// Package v1alpha1 is the service mesh's security API, group
// mesh.skiff.dev: who may talk to which workload (AuthorizationPolicy) and
// whether a workload's peers must present a mesh certificate
// (PeerAuthentication). Both kinds follow Istio's security.istio.io/v1
// field by field, so that an Istio user's manifests carry over with the
// group changed.
//
// What differs from Istio, and is refused by the API server when a policy
// is created (CEL rules and OpenAPI validation in the CRDs; there is no
// webhook):
//
//   - AuthorizationPolicy's AUDIT and CUSTOM actions, and the provider,
//     targetRef and targetRefs fields (skiff has no audit plugins,
//     external authorizers or waypoint proxies);
//   - requestPrincipals and notRequestPrincipals (skiff has no request
//     authentication: no JWT);
//   - serviceAccounts, notServiceAccounts, trustDomains and
//     notTrustDomains (write principals instead; skiff has one trust
//     domain);
//   - `when` keys other than source.ip, source.namespace,
//     source.principal, destination.port and request.headers[NAME];
//   - a '*' anywhere but alone, first or last in a principal, namespace,
//     host or path (Istio's path templates {*} and {**} included), and in
//     methods, which match exactly.
//
// The fields skiff does not support are in the schema only so that the API
// server refuses them by name instead of pruning them silently: a pruned
// serviceAccounts would turn an ALLOW rule into one that admits every
// source.
//
// Lists and strings carry bounds (maxItems, maxLength) that Istio's CRDs do
// not: the API server refuses CEL rules whose worst-case cost it cannot
// bound.
//
// The CRDs in internal/mesh/api/crds are generated from these types (make
// generate: controller-gen); internal/mesh/api embeds and installs them, and
// internal/mesh/authz holds the decisions the node proxies take from them.
//
// +kubebuilder:object:generate=true
// +groupName=mesh.skiff.dev
package v1alpha1

import "k8s.io/apimachinery/pkg/runtime/schema"

// Group and Version of the mesh's security API.
const (
	Group   = "mesh.skiff.dev"
	Version = "v1alpha1"
)

// GroupVersion is mesh.skiff.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// The resources of the mesh's security API.
var (
	AuthorizationPolicies = GroupVersion.WithResource("authorizationpolicies")
	PeerAuthentications   = GroupVersion.WithResource("peerauthentications")
)
