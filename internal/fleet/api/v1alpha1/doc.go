// Package v1alpha1 is the fleet API, group fleet.skiff.dev: the clusters an
// upstream skiff manages and the policies that place resources on them. Its
// kinds follow the shapes of Karmada's cluster.karmada.io, policy.karmada.io
// and work.karmada.io APIs field by field, so that a Karmada user's manifests
// carry over with the group changed; docs/fleet.md lists every difference.
//
// The CRDs in internal/fleet/crds are generated from these types
// (make generate: controller-gen); the controllers read and write them through
// the dynamic client and runtime.DefaultUnstructuredConverter.
//
// +kubebuilder:object:generate=true
// +groupName=fleet.skiff.dev
package v1alpha1

import "k8s.io/apimachinery/pkg/runtime/schema"

// Group and Version of the fleet API.
const (
	Group   = "fleet.skiff.dev"
	Version = "v1alpha1"
)

// GroupVersion is fleet.skiff.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// The resources of the fleet API.
var (
	Clusters                   = GroupVersion.WithResource("clusters")
	PropagationPolicies        = GroupVersion.WithResource("propagationpolicies")
	ClusterPropagationPolicies = GroupVersion.WithResource("clusterpropagationpolicies")
	OverridePolicies           = GroupVersion.WithResource("overridepolicies")
	ClusterOverridePolicies    = GroupVersion.WithResource("clusteroverridepolicies")
	ResourceBindings           = GroupVersion.WithResource("resourcebindings")
	ClusterResourceBindings    = GroupVersion.WithResource("clusterresourcebindings")
	Works                      = GroupVersion.WithResource("works")
)
