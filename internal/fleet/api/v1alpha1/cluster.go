package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cluster is a downstream cluster registered with the upstream by its fleet
// agent (Karmada's cluster.karmada.io Cluster; skiff's agents always pull).
//
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=fleet
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.kubernetesVersion`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodeSummary.totalNum`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.syncMode`,priority=1
// +kubebuilder:printcolumn:name="Ready-Nodes",type=integer,JSONPath=`.status.nodeSummary.readyNum`,priority=1
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`,priority=1
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec"`
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterSyncMode is how resources reach a cluster. skiff's agents dial out
// to the upstream and apply what it places: Pull.
type ClusterSyncMode string

// The sync modes.
const (
	Push ClusterSyncMode = "Push"
	Pull ClusterSyncMode = "Pull"
)

// ClusterSpec is what the agent registered.
type ClusterSpec struct {
	// ID is the downstream's unique identity: the UID of its kube-system
	// namespace.
	// +optional
	ID string `json:"id,omitempty"`
	// SyncMode is always Pull for clusters joined by `skiff fleet join`.
	// +kubebuilder:validation:Enum=Push;Pull
	// +kubebuilder:default=Pull
	SyncMode ClusterSyncMode `json:"syncMode"`
	// APIEndpoint is the downstream API server's URL as its agent sees it
	// (informational: the upstream reaches it only through the agent).
	// +optional
	APIEndpoint string `json:"apiEndpoint,omitempty"`
	// +optional
	Provider string `json:"provider,omitempty"`
	// +optional
	Region string `json:"region,omitempty"`
	// +optional
	Zone string `json:"zone,omitempty"`
	// Taints keep policies from placing on the cluster unless they
	// tolerate them (placement.clusterTolerations). The upstream adds
	// cluster.fleet.skiff.dev/not-ready:NoExecute while the cluster is not
	// Ready.
	// +optional
	Taints []corev1.Taint `json:"taints,omitempty"`
}

// Conditions of a Cluster.
const (
	// ClusterReady is True while the agent heartbeats and reports a
	// healthy API server.
	ClusterReady = "Ready"
)

// Taint keys the upstream sets on clusters.
const (
	TaintNotReady    = "cluster.fleet.skiff.dev/not-ready"
	TaintUnreachable = "cluster.fleet.skiff.dev/unreachable"
)

// ClusterStatus is reported by the cluster's agent, except the Ready
// condition's False/Unknown, which the upstream sets when heartbeats stop.
type ClusterStatus struct {
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// APIEnablements lists the downstream's served resources.
	// +optional
	APIEnablements []APIEnablement `json:"apiEnablements,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	NodeSummary *NodeSummary `json:"nodeSummary,omitempty"`
	// +optional
	ResourceSummary *ResourceSummary `json:"resourceSummary,omitempty"`
}

// APIEnablement is one group version's served resources.
type APIEnablement struct {
	GroupVersion string `json:"groupVersion"`
	// +optional
	Resources []APIResource `json:"resources,omitempty"`
}

// APIResource is one served resource.
type APIResource struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// NodeSummary counts the downstream's nodes.
type NodeSummary struct {
	// +optional
	TotalNum int32 `json:"totalNum,omitempty"`
	// +optional
	ReadyNum int32 `json:"readyNum,omitempty"`
}

// ResourceSummary is the downstream's capacity: allocatable is the sum over
// Ready nodes, allocated the sum of the requests of its scheduled pods that
// have not ended, allocating that of pods not yet scheduled.
type ResourceSummary struct {
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	// +optional
	Allocating corev1.ResourceList `json:"allocating,omitempty"`
	// +optional
	Allocated corev1.ResourceList `json:"allocated,omitempty"`
}

// ClusterList is a list of Clusters.
//
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}
