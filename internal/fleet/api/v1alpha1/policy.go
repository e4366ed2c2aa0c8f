package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PropagationPolicy places the resources of its namespace that it selects
// on clusters (Karmada's policy.karmada.io PropagationPolicy).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=pp,categories=fleet
// +kubebuilder:printcolumn:name="Conflict-Resolution",type=string,JSONPath=`.spec.conflictResolution`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PropagationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PropagationSpec `json:"spec"`
}

// ClusterPropagationPolicy is a PropagationPolicy for resources of any
// namespace and cluster-scoped ones. A PropagationPolicy that matches a
// resource wins over any ClusterPropagationPolicy.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cpp,categories=fleet
// +kubebuilder:printcolumn:name="Conflict-Resolution",type=string,JSONPath=`.spec.conflictResolution`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterPropagationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PropagationSpec `json:"spec"`
}

// ConflictResolution says what happens when an object of the same name
// already exists in a downstream cluster and was not put there by the fleet.
type ConflictResolution string

// The conflict resolutions.
const (
	// ConflictAbort leaves the existing object alone and reports the
	// conflict on the binding (the default).
	ConflictAbort ConflictResolution = "Abort"
	// ConflictOverwrite takes the object over.
	ConflictOverwrite ConflictResolution = "Overwrite"
)

// PropagationSpec is what a (Cluster)PropagationPolicy selects and where it
// places it.
type PropagationSpec struct {
	// ResourceSelectors select the resources to propagate; one must match.
	// +kubebuilder:validation:MinItems=1
	ResourceSelectors []ResourceSelector `json:"resourceSelectors"`
	// PropagateDeps makes the ConfigMaps, Secrets, ServiceAccount and
	// PersistentVolumeClaims a workload's pod template refers to follow it
	// to the same clusters, in its Work (default true: skiff's rule; false
	// as Karmada's default).
	// +optional
	PropagateDeps *bool `json:"propagateDeps,omitempty"`
	// Placement says on which clusters, and how replicas are divided.
	// +optional
	Placement Placement `json:"placement,omitempty"`
	// Priority orders policies that match the same resource: the higher
	// wins; among equals, a name selector beats a label selector beats a
	// kind-only selector, then the policy's name in alphabetical order.
	// +kubebuilder:default=0
	// +optional
	Priority *int32 `json:"priority,omitempty"`
	// ConflictResolution: Abort (default) or Overwrite.
	// +kubebuilder:validation:Enum=Abort;Overwrite
	// +kubebuilder:default="Abort"
	// +optional
	ConflictResolution ConflictResolution `json:"conflictResolution,omitempty"`
	// Failover says what happens to replicas on a cluster that stays not
	// Ready beyond its toleration (a skiff addition; see docs/fleet.md).
	// +optional
	Failover *FailoverBehavior `json:"failover,omitempty"`
	// DriftPolicy: Revert (default) re-applies the upstream's version when
	// a propagated object is changed in a downstream; Report only records
	// the drift as a condition and an event (a skiff addition).
	// +kubebuilder:validation:Enum=Revert;Report
	// +optional
	DriftPolicy DriftPolicy `json:"driftPolicy,omitempty"`
	// PreserveResourcesOnDeletion keeps the downstream copies when the
	// upstream object is deleted.
	// +optional
	PreserveResourcesOnDeletion *bool `json:"preserveResourcesOnDeletion,omitempty"`
}

// DriftPolicy is what the agent does on a change made in a downstream.
type DriftPolicy string

// The drift policies.
const (
	DriftRevert DriftPolicy = "Revert"
	DriftReport DriftPolicy = "Report"
)

// ResourceSelector selects resources by apiVersion and kind, and optionally
// namespace, name and labels (name wins over labels when both are given).
type ResourceSelector struct {
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// Placement is where a policy places resources.
type Placement struct {
	// +optional
	ClusterAffinity *ClusterAffinity `json:"clusterAffinity,omitempty"`
	// ClusterTolerations tolerate cluster taints. Clusters that stay not
	// Ready carry cluster.fleet.skiff.dev/not-ready:NoExecute; a toleration
	// with tolerationSeconds keeps a cluster for that long (default 300 s,
	// as Karmada's --default-not-ready-toleration-seconds).
	// +optional
	ClusterTolerations []corev1.Toleration `json:"clusterTolerations,omitempty"`
	// +optional
	SpreadConstraints []SpreadConstraint `json:"spreadConstraints,omitempty"`
	// +optional
	ReplicaScheduling *ReplicaSchedulingStrategy `json:"replicaScheduling,omitempty"`
}

// ClusterAffinity selects clusters: every given criterion must hold.
type ClusterAffinity struct {
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
	// FieldSelector selects by the Cluster's spec.provider, spec.region
	// and spec.zone (keys provider, region, zone).
	// +optional
	FieldSelector *FieldSelector `json:"fieldSelector,omitempty"`
	// +optional
	ClusterNames []string `json:"clusterNames,omitempty"`
	// +optional
	ExcludeClusters []string `json:"exclude,omitempty"`
}

// FieldSelector is a list of requirements on a cluster's fields.
type FieldSelector struct {
	MatchExpressions []corev1.NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// SpreadFieldValue is a field clusters are grouped by.
type SpreadFieldValue string

// The spread fields.
const (
	SpreadByFieldCluster  SpreadFieldValue = "cluster"
	SpreadByFieldRegion   SpreadFieldValue = "region"
	SpreadByFieldZone     SpreadFieldValue = "zone"
	SpreadByFieldProvider SpreadFieldValue = "provider"
)

// SpreadConstraint spreads placements over groups of clusters, grouped by a
// field or a label.
type SpreadConstraint struct {
	// +kubebuilder:validation:Enum=cluster;region;zone;provider
	// +optional
	SpreadByField SpreadFieldValue `json:"spreadByField,omitempty"`
	// +optional
	SpreadByLabel string `json:"spreadByLabel,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxGroups int `json:"maxGroups,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinGroups int `json:"minGroups,omitempty"`
}

// ReplicaSchedulingType is Duplicated (every cluster runs spec.replicas) or
// Divided (the clusters share them).
type ReplicaSchedulingType string

// The replica scheduling types.
const (
	Duplicated ReplicaSchedulingType = "Duplicated"
	Divided    ReplicaSchedulingType = "Divided"
)

// ReplicaDivisionPreference is how Divided replicas are shared.
type ReplicaDivisionPreference string

// The division preferences.
const (
	// Aggregated puts replicas on as few clusters as their free
	// capacity allows.
	Aggregated ReplicaDivisionPreference = "Aggregated"
	// Weighted divides by weightPreference.
	Weighted ReplicaDivisionPreference = "Weighted"
)

// ReplicaSchedulingStrategy is how a workload's replicas are placed.
type ReplicaSchedulingStrategy struct {
	// +kubebuilder:validation:Enum=Duplicated;Divided
	// +kubebuilder:default=Divided
	// +optional
	ReplicaSchedulingType ReplicaSchedulingType `json:"replicaSchedulingType,omitempty"`
	// +kubebuilder:validation:Enum=Aggregated;Weighted
	// +optional
	ReplicaDivisionPreference ReplicaDivisionPreference `json:"replicaDivisionPreference,omitempty"`
	// +optional
	WeightPreference *ClusterPreferences `json:"weightPreference,omitempty"`
}

// DynamicWeightFactor is what dynamic weights are taken from.
type DynamicWeightFactor string

// AvailableReplicas weighs each cluster by how many more replicas of the
// workload its free capacity holds.
const AvailableReplicas DynamicWeightFactor = "AvailableReplicas"

// ClusterPreferences are the weights of a Weighted division: static, or
// dynamic from each cluster's free capacity. Without either, every cluster
// weighs 1.
type ClusterPreferences struct {
	// +optional
	StaticWeightList []StaticClusterWeight `json:"staticWeightList,omitempty"`
	// +kubebuilder:validation:Enum=AvailableReplicas
	// +optional
	DynamicWeight DynamicWeightFactor `json:"dynamicWeight,omitempty"`
}

// StaticClusterWeight weighs the clusters its targetCluster selects.
type StaticClusterWeight struct {
	TargetCluster ClusterAffinity `json:"targetCluster"`
	// +kubebuilder:validation:Minimum=1
	Weight int64 `json:"weight"`
}

// FailoverBehavior is what happens when clusters fail.
type FailoverBehavior struct {
	// +optional
	Cluster *ClusterFailoverBehavior `json:"cluster,omitempty"`
}

// ReturnPolicy is how replicas return to a cluster that is Ready again.
type ReturnPolicy string

// The return policies.
const (
	// ReturnImmediate places the cluster's share back at once.
	ReturnImmediate ReturnPolicy = "Immediate"
	// ReturnGradual places the cluster's share back in steps: a part
	// (returnStepPercent) every returnStepSeconds, the rest staying where
	// failover moved it meanwhile.
	ReturnGradual ReturnPolicy = "Gradual"
	// ReturnNever leaves replicas where failover moved them (until the
	// policy or workload changes).
	ReturnNever ReturnPolicy = "Never"
)

// ClusterFailoverBehavior moves replicas off clusters that stay not Ready
// beyond their toleration.
type ClusterFailoverBehavior struct {
	// Return is how replicas go back on recovery (default Immediate).
	// +kubebuilder:validation:Enum=Immediate;Gradual;Never
	// +optional
	Return ReturnPolicy `json:"return,omitempty"`
	// ReturnStepPercent is, for a Gradual return, the part of a cluster's
	// share each step moves back (default 25; at least one replica).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	ReturnStepPercent *int32 `json:"returnStepPercent,omitempty"`
	// ReturnStepSeconds is, for a Gradual return, the time between two
	// steps (default 30).
	// +kubebuilder:validation:Minimum=1
	// +optional
	ReturnStepSeconds *int32 `json:"returnStepSeconds,omitempty"`
	// StatefulSets fails StatefulSets over too. Off by default: a
	// partitioned cluster may still run its copy, and two live copies of a
	// StatefulSet's identities must never exist.
	// +optional
	StatefulSets bool `json:"statefulSets,omitempty"`
}

// OverridePolicy rewrites the resources of its namespace that it selects,
// per cluster (Karmada's policy.karmada.io OverridePolicy).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=op,categories=fleet
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OverridePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec OverrideSpec `json:"spec"`
}

// ClusterOverridePolicy is an OverridePolicy for resources of any namespace
// and cluster-scoped ones; it applies before the namespace's
// OverridePolicies.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cop,categories=fleet
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterOverridePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec OverrideSpec `json:"spec"`
}

// OverrideSpec selects resources and rewrites them per cluster.
type OverrideSpec struct {
	// ResourceSelectors: none selects every resource the policy may see.
	// +optional
	ResourceSelectors []ResourceSelector `json:"resourceSelectors,omitempty"`
	// OverrideRules apply in order, each to the clusters its
	// targetCluster selects (every cluster when absent).
	// +optional
	OverrideRules []RuleWithCluster `json:"overrideRules,omitempty"`
}

// RuleWithCluster is overriders for some clusters.
type RuleWithCluster struct {
	// +optional
	TargetCluster *ClusterAffinity `json:"targetCluster,omitempty"`
	Overriders    Overriders       `json:"overriders"`
}

// Overriders rewrite a resource; they apply in this order: images,
// commands, args, labels, annotations, plaintext.
type Overriders struct {
	// +optional
	Plaintext []PlaintextOverrider `json:"plaintext,omitempty"`
	// +optional
	ImageOverrider []ImageOverrider `json:"imageOverrider,omitempty"`
	// +optional
	CommandOverrider []CommandArgsOverrider `json:"commandOverrider,omitempty"`
	// +optional
	ArgsOverrider []CommandArgsOverrider `json:"argsOverrider,omitempty"`
	// +optional
	LabelsOverrider []LabelAnnotationOverrider `json:"labelsOverrider,omitempty"`
	// +optional
	AnnotationsOverrider []LabelAnnotationOverrider `json:"annotationsOverrider,omitempty"`
}

// OverriderOperator is what an overrider does.
type OverriderOperator string

// The operators.
const (
	OverriderOpAdd     OverriderOperator = "add"
	OverriderOpRemove  OverriderOperator = "remove"
	OverriderOpReplace OverriderOperator = "replace"
)

// PlaintextOverrider is one JSON patch operation (RFC 6902) on the
// resource.
type PlaintextOverrider struct {
	// Path is a JSON pointer, e.g. /spec/replicas.
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// +kubebuilder:validation:Enum=add;remove;replace
	Operator OverriderOperator `json:"operator"`
	// +optional
	Value apiextensionsv1.JSON `json:"value,omitempty"`
}

// ImageComponent is a part of an image reference.
type ImageComponent string

// The image components: registry/repository:tag.
const (
	Registry   ImageComponent = "Registry"
	Repository ImageComponent = "Repository"
	Tag        ImageComponent = "Tag"
)

// ImageOverrider rewrites a part of image references: those of every
// container and init container, or the one its predicate's path points to.
type ImageOverrider struct {
	// +optional
	Predicate *ImagePredicate `json:"predicate,omitempty"`
	// +kubebuilder:validation:Enum=Registry;Repository;Tag
	Component ImageComponent `json:"component"`
	// +kubebuilder:validation:Enum=add;remove;replace
	Operator OverriderOperator `json:"operator"`
	// +optional
	Value string `json:"value,omitempty"`
}

// ImagePredicate points at one image field.
type ImagePredicate struct {
	// Path is a JSON pointer to an image string, e.g.
	// /spec/template/spec/containers/0/image.
	Path string `json:"path"`
}

// CommandArgsOverrider adds to or removes from a container's command or
// args.
type CommandArgsOverrider struct {
	ContainerName string `json:"containerName"`
	// +kubebuilder:validation:Enum=add;remove
	Operator OverriderOperator `json:"operator"`
	// +optional
	Value []string `json:"value,omitempty"`
}

// LabelAnnotationOverrider adds, replaces or removes labels or annotations.
type LabelAnnotationOverrider struct {
	// +kubebuilder:validation:Enum=add;remove;replace
	Operator OverriderOperator `json:"operator"`
	// +optional
	Value map[string]string `json:"value,omitempty"`
}

// PropagationPolicyList is a list of PropagationPolicies.
//
// +kubebuilder:object:root=true
type PropagationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PropagationPolicy `json:"items"`
}

// ClusterPropagationPolicyList is a list of ClusterPropagationPolicies.
//
// +kubebuilder:object:root=true
type ClusterPropagationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterPropagationPolicy `json:"items"`
}

// OverridePolicyList is a list of OverridePolicies.
//
// +kubebuilder:object:root=true
type OverridePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OverridePolicy `json:"items"`
}

// ClusterOverridePolicyList is a list of ClusterOverridePolicies.
//
// +kubebuilder:object:root=true
type ClusterOverridePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterOverridePolicy `json:"items"`
}
