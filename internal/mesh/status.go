package mesh

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffdev/skiff/internal/controller/meshca"
	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/mesh/authz"
)

// WorkloadStatus is the mesh's view of one workload (as Workload names it)
// of a namespace: what `skiff mesh status` prints, one row each.
type WorkloadStatus struct {
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	// Pods counts the workload's enrolled pods.
	Pods int `json:"pods"`
	// Ready counts those whose IdentityCondition is True: their node
	// proxy holds a certificate for them.
	Ready int `json:"ready"`
	// Pending counts those without an IdentityCondition yet (or with
	// status Unknown): their node proxy has not reported.
	Pending int `json:"pending"`
	// Identity is the SPIFFE ID the pods' traffic carries; several service
	// accounts in one workload: the IDs comma-joined, sorted.
	Identity string `json:"identity"`
	// Expiry is the earliest certificate expiry among the pods, read from
	// their IdentityConditions' messages; zero when none says.
	Expiry time.Time `json:"expiry,omitzero"`
	// Problem is the first failure message of a pod's certificate request
	// (a False IdentityCondition, pods in name order), else, when Expiry has passed, that the
	// certificate expired (its node proxy has not renewed it); empty when
	// there is neither.
	Problem string `json:"problem,omitempty"`
	// MTLS is the mutual TLS mode of the workload's first pod (name order)
	// on port 0, that is without port-level overrides.
	MTLS authz.Mode `json:"mtls"`
	// AuthzPolicies counts the AuthorizationPolicies that apply to the
	// workload's first pod.
	AuthzPolicies int `json:"authzPolicies"`
}

// Status groups the enrolled pods (Enrolled, with their namespace from
// namespaces) by namespace and workload, and reports for each its identity,
// certificates (from the pods' IdentityConditions) and the policies that
// apply to it, sorted by namespace then workload. Pods of other namespaces
// than those listed count as not enrolled. now decides whether a
// certificate has expired. Status is pure: the caller lists the objects.
func Status(pods []*corev1.Pod, namespaces []*corev1.Namespace, authzPolicies []*v1alpha1.AuthorizationPolicy, peerAuths []*v1alpha1.PeerAuthentication, trustDomain string, now time.Time) []WorkloadStatus {
	nsByName := make(map[string]*corev1.Namespace, len(namespaces))
	for _, n := range namespaces {
		nsByName[n.Name] = n
	}
	type key struct{ namespace, workload string }
	groups := map[key][]*corev1.Pod{}
	for _, p := range pods {
		if Enrolled(p, nsByName[p.Namespace]) {
			k := key{p.Namespace, Workload(p)}
			groups[k] = append(groups[k], p)
		}
	}

	out := make([]WorkloadStatus, 0, len(groups))
	for k, members := range groups {
		slices.SortFunc(members, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, workloadStatus(k.namespace, k.workload, members, authzPolicies, peerAuths, trustDomain, now))
	}
	slices.SortFunc(out, func(a, b WorkloadStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Workload, b.Workload))
	})
	return out
}

// workloadStatus is Status for the pods of one workload, in name order.
func workloadStatus(namespace, workload string, pods []*corev1.Pod, authzPolicies []*v1alpha1.AuthorizationPolicy, peerAuths []*v1alpha1.PeerAuthentication, trustDomain string, now time.Time) WorkloadStatus {
	s := WorkloadStatus{Namespace: namespace, Workload: workload, Pods: len(pods)}
	var ids []string
	var expiring *corev1.Pod // the pod whose certificate expires first
	for _, p := range pods {
		id := IdentityOf(p)
		if spiffe := meshca.SPIFFEID(trustDomain, id.Namespace, id.ServiceAccount); !slices.Contains(ids, spiffe) {
			ids = append(ids, spiffe)
		}
		c := podIdentityCondition(p)
		switch {
		case c == nil || c.Status == corev1.ConditionUnknown:
			s.Pending++
		case c.Status == corev1.ConditionTrue:
			s.Ready++
			if exp, ok := certificateExpiry(c.Message); ok && (s.Expiry.IsZero() || exp.Before(s.Expiry)) {
				s.Expiry, expiring = exp, p
			}
		case c.Status == corev1.ConditionFalse && s.Problem == "":
			s.Problem = cmp.Or(c.Message, c.Reason, "certificate request failed")
		}
	}
	slices.Sort(ids)
	s.Identity = strings.Join(ids, ",")
	if s.Problem == "" && expiring != nil && !s.Expiry.After(now) {
		s.Problem = fmt.Sprintf("certificate of pod %s expired at %s: is the node proxy on node %s running?",
			expiring.Name, s.Expiry.UTC().Format(time.RFC3339), cmp.Or(expiring.Spec.NodeName, "<none>"))
	}

	first := pods[0]
	s.MTLS = authz.PeerMode(peerAuths, authz.RootNamespace, namespace, first.Labels, 0)
	for _, p := range authzPolicies {
		if authz.Applies(p, authz.RootNamespace, namespace, first.Labels) {
			s.AuthzPolicies++
		}
	}
	return s
}

// podIdentityCondition is pod's IdentityCondition, or nil.
func podIdentityCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == IdentityCondition {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// certificateExpiry reads the expiry from an identity condition's message,
// "spiffe://… expires 2026-12-07T06:00:00Z": its last field, RFC 3339.
func certificateExpiry(message string) (time.Time, bool) {
	fields := strings.Fields(message)
	if len(fields) == 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, fields[len(fields)-1])
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
