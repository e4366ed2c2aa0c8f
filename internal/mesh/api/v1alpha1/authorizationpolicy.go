package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationPolicy allows or denies requests to the workloads it
// selects (Istio's security.istio.io AuthorizationPolicy). The node proxy
// in front of the destination pod enforces it: a request is denied when a
// DENY policy matches it; otherwise, when ALLOW policies apply to the pod,
// one of them must match it; with none, it is allowed. internal/mesh/authz
// is the exact semantics.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=mesh
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`,description="What the policy does with the requests its rules match."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the policy; an empty spec is an ALLOW policy without rules,
	// which denies every request to the pods of its namespace.
	// +optional
	Spec AuthorizationPolicySpec `json:"spec"`
}

// Action is what an AuthorizationPolicy does with the requests its rules
// match.
type Action string

// The actions. skiff enforces ALLOW and DENY; the API server refuses the
// other two, which exist in the type for Istio's vocabulary.
const (
	// ActionAllow admits the requests that match (the default). When any
	// ALLOW policy applies to a pod, requests that match none are denied.
	ActionAllow Action = "ALLOW"
	// ActionDeny refuses the requests that match, whatever ALLOW policies
	// say.
	ActionDeny Action = "DENY"
	// ActionAudit marks matching requests for an audit plugin (Istio);
	// refused by skiff.
	ActionAudit Action = "AUDIT"
	// ActionCustom hands matching requests to an external authorizer
	// (Istio); refused by skiff.
	ActionCustom Action = "CUSTOM"
)

// AuthorizationPolicySpec selects workloads and says which requests to
// them the policy matches and what it does with them.
//
// +kubebuilder:validation:XValidation:rule="!has(self.targetRef)",message="targetRef: skiff has no waypoint proxies or gateways to attach a policy to; select pods with selector",fieldPath=".targetRef"
// +kubebuilder:validation:XValidation:rule="!has(self.targetRefs)",message="targetRefs: skiff has no waypoint proxies or gateways to attach a policy to; select pods with selector",fieldPath=".targetRefs"
// +kubebuilder:validation:XValidation:rule="!has(self.provider)",message="provider: skiff does not support the CUSTOM action or external authorizers",fieldPath=".provider"
type AuthorizationPolicySpec struct {
	// Selector picks the pods the policy applies to, in the policy's
	// namespace (every namespace for a policy in kube-system, the mesh's
	// root namespace). Absent, the policy applies to every pod there.
	// +optional
	Selector *WorkloadSelector `json:"selector,omitempty"`
	// TargetRef is not supported by skiff (Istio attaches policies to
	// waypoints and gateways with it); the API server refuses it.
	// +optional
	TargetRef *PolicyTargetReference `json:"targetRef,omitempty"`
	// TargetRefs is not supported by skiff; the API server refuses it.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	TargetRefs []PolicyTargetReference `json:"targetRefs,omitempty"`
	// Rules match requests: the policy matches a request when at least one
	// rule does. No rules match nothing: an ALLOW policy without rules
	// denies every request to its pods, a DENY policy without rules denies
	// none. A rule `{}` matches every request.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Rules []Rule `json:"rules,omitempty"`
	// Action is ALLOW (the default) or DENY. Istio's AUDIT and CUSTOM are
	// refused.
	// +kubebuilder:validation:Enum=ALLOW;DENY;AUDIT;CUSTOM
	// +kubebuilder:validation:XValidation:rule="self == 'ALLOW' || self == 'DENY'",message="action: skiff does not support the AUDIT and CUSTOM actions; use ALLOW or DENY"
	// +kubebuilder:default=ALLOW
	// +optional
	Action Action `json:"action,omitempty"`
	// Provider names the external authorizer of a CUSTOM policy (Istio);
	// the API server refuses it.
	// +optional
	Provider *ExtensionProvider `json:"provider,omitempty"`
}

// PolicyTargetReference names a resource a policy attaches to (Istio's
// targetRef). skiff refuses it; the type is here so that the API server
// can say so instead of dropping the field.
type PolicyTargetReference struct {
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// ExtensionProvider names an external authorizer (Istio's CUSTOM action).
// skiff refuses it.
type ExtensionProvider struct {
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`
}

// Rule matches a request when one of its sources (from), one of its
// operations (to) and every condition (when) match it; an absent list
// matches every request.
//
// Strings in sources, operations and conditions match in one of four
// forms: exact ("abc"), prefix ("abc*": "abc", "abcd"), suffix ("*abc":
// "abc", "xabc") or presence ("*": any non-empty value).
type Rule struct {
	// From lists the sources of the request; one must match.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	From []RuleFrom `json:"from,omitempty"`
	// To lists operations; one must match.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	To []RuleTo `json:"to,omitempty"`
	// When lists further conditions; all must match.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	When []Condition `json:"when,omitempty"`
}

// RuleFrom wraps a Source, as Istio's Rule.From does.
type RuleFrom struct {
	// Source is who sends the request.
	// +optional
	Source Source `json:"source"`
}

// RuleTo wraps an Operation, as Istio's Rule.To does.
type RuleTo struct {
	// Operation is what the request does.
	// +optional
	Operation Operation `json:"operation"`
}

// Source matches the sender of a request. Every field that is set must
// match (a notX field matches when none of its values does); an empty
// source matches every sender.
type Source struct {
	// Principals are mesh identities of the peer, from its certificate, in
	// the form TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT (skiff's trust
	// domain is cluster.local). A peer without a certificate (plaintext)
	// has no principal and matches none.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="principals: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	Principals []string `json:"principals,omitempty"`
	// NotPrincipals match when the peer's principal matches none of them
	// (a plaintext peer, which has none, matches).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="notPrincipals: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	NotPrincipals []string `json:"notPrincipals,omitempty"`
	// RequestPrincipals are JWT identities in Istio; skiff has no request
	// authentication and the API server refuses the field.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="requestPrincipals: skiff has no request authentication (JWT); match the peer with principals or namespaces"
	// +optional
	RequestPrincipals []string `json:"requestPrincipals,omitempty"`
	// NotRequestPrincipals: refused, as RequestPrincipals.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="notRequestPrincipals: skiff has no request authentication (JWT); match the peer with notPrincipals or notNamespaces"
	// +optional
	NotRequestPrincipals []string `json:"notRequestPrincipals,omitempty"`
	// Namespaces are the namespace of the peer's principal; like
	// Principals, they need a certificate (a plaintext peer matches none).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="namespaces: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// NotNamespaces match when the peer's namespace matches none of them.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="notNamespaces: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	NotNamespaces []string `json:"notNamespaces,omitempty"`
	// ServiceAccounts are not supported by skiff (write principals
	// cluster.local/ns/NAMESPACE/sa/NAME); the API server refuses them.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="serviceAccounts: not supported by skiff; write principals: [cluster.local/ns/NAMESPACE/sa/NAME]"
	// +optional
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// NotServiceAccounts: refused, as ServiceAccounts.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="notServiceAccounts: not supported by skiff; write notPrincipals: [cluster.local/ns/NAMESPACE/sa/NAME]"
	// +optional
	NotServiceAccounts []string `json:"notServiceAccounts,omitempty"`
	// TrustDomains are not supported by skiff, whose mesh has the one trust
	// domain cluster.local; the API server refuses them.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="trustDomains: not supported by skiff (its one trust domain is cluster.local); match principals instead"
	// +optional
	TrustDomains []string `json:"trustDomains,omitempty"`
	// NotTrustDomains: refused, as TrustDomains.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="notTrustDomains: not supported by skiff (its one trust domain is cluster.local); match notPrincipals instead"
	// +optional
	NotTrustDomains []string `json:"notTrustDomains,omitempty"`
	// IPBlocks are IP addresses ("203.0.113.4") or CIDRs
	// ("203.0.113.0/24") the packet's source address must be in.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isIP(self) || isCIDR(self)",message="ipBlocks: each is an IP address or a CIDR"
	// +optional
	IPBlocks []string `json:"ipBlocks,omitempty"`
	// NotIPBlocks match when the source address is in none of them.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isIP(self) || isCIDR(self)",message="notIpBlocks: each is an IP address or a CIDR"
	// +optional
	NotIPBlocks []string `json:"notIpBlocks,omitempty"`
	// RemoteIPBlocks are, in Istio, matched against the client address a
	// trusted proxy reports (X-Forwarded-For, PROXY protocol). skiff's node
	// proxies trust no such hop, so, as Istio does without trusted proxies,
	// they match the packet's source address like IPBlocks.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isIP(self) || isCIDR(self)",message="remoteIpBlocks: each is an IP address or a CIDR"
	// +optional
	RemoteIPBlocks []string `json:"remoteIpBlocks,omitempty"`
	// NotRemoteIPBlocks match when the source address is in none of them.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isIP(self) || isCIDR(self)",message="notRemoteIpBlocks: each is an IP address or a CIDR"
	// +optional
	NotRemoteIPBlocks []string `json:"notRemoteIpBlocks,omitempty"`
}

// Operation matches what a request does. Every field that is set must
// match; an empty operation matches every request. Hosts, methods and paths
// exist only in HTTP: see Rule for how they count on plain TCP connections.
type Operation struct {
	// Hosts are the request's Host (HTTP/1) or :authority (HTTP/2),
	// compared case-insensitively, port included when the client sent
	// one. HTTP only.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="hosts: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	Hosts []string `json:"hosts,omitempty"`
	// NotHosts match when the host matches none of them. HTTP only.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="notHosts: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported"
	// +optional
	NotHosts []string `json:"notHosts,omitempty"`
	// Ports are destination port numbers (strings, as in Istio: "8080").
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=5
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[0-9]+$') && int(self) >= 1 && int(self) <= 65535",message="ports: each is a port number from 1 to 65535"
	// +optional
	Ports []string `json:"ports,omitempty"`
	// NotPorts match when the destination port is none of them.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=5
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[0-9]+$') && int(self) >= 1 && int(self) <= 65535",message="notPorts: each is a port number from 1 to 65535"
	// +optional
	NotPorts []string `json:"notPorts,omitempty"`
	// Methods are HTTP methods ("GET"), compared exactly (case matters). HTTP only.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+$')",message="methods: each is a non-empty HTTP method such as GET, matched exactly (no '*')"
	// +optional
	Methods []string `json:"methods,omitempty"`
	// NotMethods match when the method is none of them. HTTP only.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+$')",message="notMethods: each is a non-empty HTTP method such as GET, matched exactly (no '*')"
	// +optional
	NotMethods []string `json:"notMethods,omitempty"`
	// Paths are the request's path, without its query string. HTTP only.
	// Istio's path templates ({*}, {**}) are not supported.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="paths: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere (path templates {*} and {**} included) is not supported"
	// +optional
	Paths []string `json:"paths,omitempty"`
	// NotPaths match when the path matches none of them. HTTP only.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self.size() <= 1 || (!self.substring(1, self.size() - 1).contains('*') && !(self.startsWith('*') && self.endsWith('*')))",message="notPaths: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere (path templates {*} and {**} included) is not supported"
	// +optional
	NotPaths []string `json:"notPaths,omitempty"`
}

// The keys a Condition may have.
const (
	// KeySourceIP is the packet's source address; values are IP addresses
	// or CIDRs.
	KeySourceIP = "source.ip"
	// KeySourceNamespace is the namespace of the peer's principal.
	KeySourceNamespace = "source.namespace"
	// KeySourcePrincipal is the peer's principal.
	KeySourcePrincipal = "source.principal"
	// KeyDestinationPort is the destination port; values are port numbers.
	KeyDestinationPort = "destination.port"
	// KeyRequestHeaderPrefix starts request.headers[NAME]: the value of the
	// request's header NAME (HTTP only; several values joined by ",").
	KeyRequestHeaderPrefix = "request.headers["
)

// Condition matches one attribute of a request (Istio's conditions).
//
// +kubebuilder:validation:XValidation:rule="(has(self.values) && size(self.values) > 0) || (has(self.notValues) && size(self.notValues) > 0)",message="when: a condition needs values or notValues"
// +kubebuilder:validation:XValidation:rule="self.key != 'source.ip' || !has(self.values) || self.values.all(v, isIP(v) || isCIDR(v))",message="values: source.ip takes IP addresses or CIDRs",fieldPath=".values"
// +kubebuilder:validation:XValidation:rule="self.key != 'source.ip' || !has(self.notValues) || self.notValues.all(v, isIP(v) || isCIDR(v))",message="notValues: source.ip takes IP addresses or CIDRs",fieldPath=".notValues"
// +kubebuilder:validation:XValidation:rule="self.key != 'destination.port' || !has(self.values) || self.values.all(v, v.matches('^[0-9]{1,5}$') && int(v) >= 1 && int(v) <= 65535)",message="values: destination.port takes port numbers from 1 to 65535",fieldPath=".values"
// +kubebuilder:validation:XValidation:rule="self.key != 'destination.port' || !has(self.notValues) || self.notValues.all(v, v.matches('^[0-9]{1,5}$') && int(v) >= 1 && int(v) <= 65535)",message="notValues: destination.port takes port numbers from 1 to 65535",fieldPath=".notValues"
// +kubebuilder:validation:XValidation:rule="self.key == 'source.ip' || self.key == 'destination.port' || !has(self.values) || self.values.all(v, v.size() <= 1 || (!v.substring(1, v.size() - 1).contains('*') && !(v.startsWith('*') && v.endsWith('*'))))",message="values: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported",fieldPath=".values"
// +kubebuilder:validation:XValidation:rule="self.key == 'source.ip' || self.key == 'destination.port' || !has(self.notValues) || self.notValues.all(v, v.size() <= 1 || (!v.substring(1, v.size() - 1).contains('*') && !(v.startsWith('*') && v.endsWith('*'))))",message="notValues: each is exact, PREFIX*, *SUFFIX or *; a '*' elsewhere is not supported",fieldPath=".notValues"
type Condition struct {
	// Key is the attribute: source.ip, source.namespace, source.principal,
	// destination.port or request.headers[NAME]. Istio's other keys
	// (request.auth.*, remote.ip, destination.ip, connection.sni,
	// experimental.*) are refused.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`self in ['source.ip', 'source.namespace', 'source.principal', 'destination.port'] || self.matches(r'^request\.headers\[[^\[\]]+\]$')`,message="key: skiff supports source.ip, source.namespace, source.principal, destination.port and request.headers[NAME]"
	Key string `json:"key"`
	// Values: the attribute must match one of them.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	Values []string `json:"values,omitempty"`
	// NotValues: the attribute must match none of them.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	NotValues []string `json:"notValues,omitempty"`
}

// AuthorizationPolicyList is a list of AuthorizationPolicies.
//
// +kubebuilder:object:root=true
type AuthorizationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthorizationPolicy `json:"items"`
}
