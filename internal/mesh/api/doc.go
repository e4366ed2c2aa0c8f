// Package api installs the service mesh's security API (mesh.skiff.dev,
// the types in internal/mesh/api/v1alpha1): it embeds the CRDs that
// controller-gen generates into internal/mesh/api/crds (make generate) and
// applies them to a cluster.
//
// The CRDs carry the API's whole admission-time validation, as OpenAPI
// schema and CEL rules that the API server evaluates itself: there is no
// validating webhook to run or to fail open. crds_test.go evaluates them
// the way the API server does, against policies that must be accepted and
// policies that must be refused.
//
// The package owns neither the enforcement (internal/mesh's node proxy)
// nor the decisions (internal/mesh/authz), nor when the CRDs are installed
// (the composition root calls InstallCRDs).
package api
