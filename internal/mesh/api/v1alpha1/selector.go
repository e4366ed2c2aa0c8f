package v1alpha1

// WorkloadSelector selects the pods a policy applies to by their labels
// (Istio's istio.type.v1beta1.WorkloadSelector).
type WorkloadSelector struct {
	// MatchLabels are labels a pod must all carry, with these values, for
	// the policy to apply to it. The pods are looked for in the policy's
	// namespace, or in every namespace when the policy is in the mesh's root
	// namespace (kube-system). Empty selects every pod there.
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.size() != 0 && !key.contains('*'))",message="matchLabels: keys must be non-empty and hold no '*' (labels match exactly)"
	// +kubebuilder:validation:XValidation:rule="self.all(key, !self[key].contains('*'))",message="matchLabels: values hold no '*' (labels match exactly)"
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}
