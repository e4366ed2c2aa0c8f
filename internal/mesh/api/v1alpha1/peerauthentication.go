package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PeerAuthentication says whether the workloads it selects accept
// plaintext connections or only mutual TLS from the mesh (Istio's
// security.istio.io PeerAuthentication). The most specific policy wins: one
// with a selector in the pod's namespace, then the namespace's own, then
// the mesh-wide one in kube-system; UNSET inherits from the next level up,
// and the default is PERMISSIVE. internal/mesh/authz is the exact
// semantics.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=mesh
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mtls.mode`,description="The mutual TLS mode of the selected workloads."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec PeerAuthenticationSpec `json:"spec"`
}

// MutualTLSMode is whether a workload accepts plaintext connections.
type MutualTLSMode string

// The modes.
const (
	// MTLSUnset inherits the mode of the next level up (namespace, then
	// mesh); PERMISSIVE when there is none.
	MTLSUnset MutualTLSMode = "UNSET"
	// MTLSDisable: the node proxy does not tunnel connections to the
	// workload in mutual TLS.
	MTLSDisable MutualTLSMode = "DISABLE"
	// MTLSPermissive accepts both mutual TLS and plaintext.
	MTLSPermissive MutualTLSMode = "PERMISSIVE"
	// MTLSStrict accepts only mutual TLS with a mesh certificate.
	MTLSStrict MutualTLSMode = "STRICT"
)

// PeerAuthenticationSpec selects workloads and sets their mode.
//
// +kubebuilder:validation:XValidation:rule="!has(self.portLevelMtls) || (has(self.selector) && has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0)",message="portLevelMtls: needs a selector with matchLabels (port-level modes apply to selected workloads only)",fieldPath=".portLevelMtls"
type PeerAuthenticationSpec struct {
	// Selector picks the pods the policy applies to, in the policy's
	// namespace. Absent, the policy is its namespace's default, or the
	// mesh's when in kube-system, the root namespace. (As in Istio, a
	// policy with a selector in the root namespace has no effect.)
	// +optional
	Selector *WorkloadSelector `json:"selector,omitempty"`
	// MTLS is the mode of the selected workloads; absent is UNSET.
	// +optional
	MTLS *MutualTLS `json:"mtls,omitempty"`
	// PortLevelMTLS overrides the mode for some of the workloads' ports (the
	// pod's port, not a Service's), keyed by port number as a string
	// ("8080"; no leading zeros, so that a port has one key). Needs a
	// selector, in a namespace other than the root namespace.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(port, port.matches('^[1-9][0-9]{0,4}$') && int(port) <= 65535)",message="portLevelMtls: keys are port numbers from 1 to 65535, without leading zeros"
	// +optional
	PortLevelMTLS map[string]MutualTLS `json:"portLevelMtls,omitempty"`
}

// MutualTLS is a mutual TLS setting.
type MutualTLS struct {
	// Mode is UNSET (inherit, the default), DISABLE, PERMISSIVE or STRICT.
	// +kubebuilder:validation:Enum=UNSET;DISABLE;PERMISSIVE;STRICT
	// +optional
	Mode MutualTLSMode `json:"mode,omitempty"`
}

// PeerAuthenticationList is a list of PeerAuthentications.
//
// +kubebuilder:object:root=true
type PeerAuthenticationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PeerAuthentication `json:"items"`
}
