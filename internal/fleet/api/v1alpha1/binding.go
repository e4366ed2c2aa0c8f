package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// ResourceBinding records where one namespaced resource was placed and its
// state in each cluster (Karmada's work.karmada.io ResourceBinding). The
// upstream creates it beside the resource, named NAME-KIND, owned by it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=rb,categories=fleet
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Scheduled",type=string,JSONPath=`.status.conditions[?(@.type=="Scheduled")].status`
// +kubebuilder:printcolumn:name="FullyApplied",type=string,JSONPath=`.status.conditions[?(@.type=="FullyApplied")].status`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.placementSummary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policy.name`,priority=1
type ResourceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ResourceBindingSpec   `json:"spec"`
	Status ResourceBindingStatus `json:"status,omitempty"`
}

// ClusterResourceBinding is a ResourceBinding for a cluster-scoped resource.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=crb,categories=fleet
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Scheduled",type=string,JSONPath=`.status.conditions[?(@.type=="Scheduled")].status`
// +kubebuilder:printcolumn:name="FullyApplied",type=string,JSONPath=`.status.conditions[?(@.type=="FullyApplied")].status`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.placementSummary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policy.name`,priority=1
type ClusterResourceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ResourceBindingSpec   `json:"spec"`
	Status ResourceBindingStatus `json:"status,omitempty"`
}

// ResourceBindingSpec is the resource and its placement.
type ResourceBindingSpec struct {
	Resource ObjectReference `json:"resource"`
	// Policy is the (Cluster)PropagationPolicy that placed it.
	// +optional
	Policy *PolicyReference `json:"policy,omitempty"`
	// Replicas is the workload's spec.replicas (0 for other kinds).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReplicaRequirements is one replica's resource requests.
	// +optional
	ReplicaRequirements *ReplicaRequirements `json:"replicaRequirements,omitempty"`
	// Placement is the policy's placement, as scheduled.
	// +optional
	Placement *Placement `json:"placement,omitempty"`
	// Clusters is the result: where, and for workloads how many replicas.
	// +optional
	Clusters []TargetCluster `json:"clusters,omitempty"`
	// +optional
	ConflictResolution ConflictResolution `json:"conflictResolution,omitempty"`
	// +optional
	DriftPolicy DriftPolicy `json:"driftPolicy,omitempty"`
	// +optional
	PreserveResourcesOnDeletion *bool `json:"preserveResourcesOnDeletion,omitempty"`
	// FailedOver lists the clusters the workload's share moved off and
	// when, so that a Never return policy holds across
	// restarts.
	// +optional
	FailedOver []FailedOverCluster `json:"failedOver,omitempty"`
}

// FailedOverCluster is a cluster a workload's share moved off.
type FailedOverCluster struct {
	Name string      `json:"name"`
	Time metav1.Time `json:"time"`
	// ReturnStep is, while a Gradual return is under way, when its last
	// step was taken.
	// +optional
	ReturnStep *metav1.Time `json:"returnStep,omitempty"`
}

// ObjectReference names the propagated resource.
type ObjectReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// +optional
	UID types.UID `json:"uid,omitempty"`
	// +optional
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// PolicyReference names a policy.
type PolicyReference struct {
	// Kind is PropagationPolicy or ClusterPropagationPolicy.
	Kind string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// ReplicaRequirements is what one replica requests.
type ReplicaRequirements struct {
	// +optional
	ResourceRequest corev1.ResourceList `json:"resourceRequest,omitempty"`
}

// TargetCluster is one cluster of a placement.
type TargetCluster struct {
	Name string `json:"name"`
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
}

// Conditions of a binding.
const (
	// Scheduled is True once clusters are chosen; False with a reason
	// when none are eligible.
	Scheduled = "Scheduled"
	// FullyApplied is True when every chosen cluster applied the
	// resource; False names the clusters that did not and why.
	FullyApplied = "FullyApplied"
	// Drifted is True while a downstream copy differs from the upstream's
	// (with driftPolicy Report; Revert puts it back).
	Drifted = "Drifted"
)

// ResourceBindingStatus is the resource's state in each cluster.
type ResourceBindingStatus struct {
	// +optional
	SchedulerObservedGeneration int64 `json:"schedulerObservedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AggregatedStatus is each cluster's copy's status.
	// +optional
	AggregatedStatus []AggregatedStatusItem `json:"aggregatedStatus,omitempty"`
	// PlacementSummary is "CLUSTER[=REPLICAS][(STATE)],…" for kubectl's
	// table.
	// +optional
	PlacementSummary string `json:"placementSummary,omitempty"`
}

// Health of a copy.
const (
	Healthy       = "Healthy"
	Unhealthy     = "Unhealthy"
	UnknownHealth = "Unknown"
)

// AggregatedStatusItem is one cluster's copy.
type AggregatedStatusItem struct {
	ClusterName string `json:"clusterName"`
	// Status is the copy's .status as the downstream reports it.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Status *runtime.RawExtension `json:"status,omitempty"`
	// +optional
	Applied bool `json:"applied,omitempty"`
	// +optional
	AppliedMessage string `json:"appliedMessage,omitempty"`
	// +kubebuilder:validation:Enum=Healthy;Unhealthy;Unknown
	// +optional
	Health string `json:"health,omitempty"`
}

// ResourceBindingList is a list of ResourceBindings.
//
// +kubebuilder:object:root=true
type ResourceBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResourceBinding `json:"items"`
}

// ClusterResourceBindingList is a list of ClusterResourceBindings.
//
// +kubebuilder:object:root=true
type ClusterResourceBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterResourceBinding `json:"items"`
}

// Work is what one cluster's agent applies: the rendered manifests of one
// binding for that cluster, in the cluster's execution namespace
// (fleet-cluster-NAME) on the upstream (Karmada's work.karmada.io Work).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=fleet
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Workload-Kind",type=string,JSONPath=`.spec.workload.manifests[0].kind`
// +kubebuilder:printcolumn:name="Applied",type=string,JSONPath=`.status.conditions[?(@.type=="Applied")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Work struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkSpec   `json:"spec"`
	Status WorkStatus `json:"status,omitempty"`
}

// WorkSpec is the manifests to apply.
type WorkSpec struct {
	Workload WorkloadTemplate `json:"workload"`
	// +optional
	ConflictResolution ConflictResolution `json:"conflictResolution,omitempty"`
	// +optional
	DriftPolicy DriftPolicy `json:"driftPolicy,omitempty"`
	// +optional
	PreserveResourcesOnDeletion *bool `json:"preserveResourcesOnDeletion,omitempty"`
}

// WorkloadTemplate holds the manifests.
type WorkloadTemplate struct {
	// +optional
	Manifests []Manifest `json:"manifests,omitempty"`
}

// Manifest is one object to apply.
//
// +kubebuilder:pruning:PreserveUnknownFields
// +kubebuilder:validation:EmbeddedResource
type Manifest struct {
	runtime.RawExtension `json:",inline"`
}

// Conditions of a Work.
const (
	// Applied is True when the agent applied every manifest.
	Applied = "Applied"
)

// WorkStatus is what the agent reports.
type WorkStatus struct {
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	ManifestStatuses []ManifestStatus `json:"manifestStatuses,omitempty"`
}

// ManifestStatus is one applied object's state.
type ManifestStatus struct {
	Identifier ResourceIdentifier `json:"identifier"`
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Status *runtime.RawExtension `json:"status,omitempty"`
	// +kubebuilder:validation:Enum=Healthy;Unhealthy;Unknown
	// +optional
	Health string `json:"health,omitempty"`
}

// ResourceIdentifier names a manifest.
type ResourceIdentifier struct {
	Ordinal int `json:"ordinal"`
	// +optional
	Group   string `json:"group,omitempty"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	// +optional
	Resource string `json:"resource,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Generation and ObservedGeneration of the downstream copy.
	// +optional
	Generation int64 `json:"generation,omitempty"`
}

// WorkList is a list of Works.
//
// +kubebuilder:object:root=true
type WorkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Work `json:"items"`
}
