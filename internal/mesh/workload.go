package mesh

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EnabledLabel enrols a namespace's pods, or one pod, in the mesh when it
// is "true"; on a pod, "false" keeps it out of an enrolled namespace.
const EnabledLabel = "mesh.skiff.dev/enabled"

// Enrolled reports whether pod's traffic goes through the mesh: the pod or
// its namespace is labelled, the pod has an address of its own (not the
// node's network) and runs.
func Enrolled(pod *corev1.Pod, ns *corev1.Namespace) bool {
	if pod.Spec.HostNetwork || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	switch pod.Labels[EnabledLabel] {
	case "true":
		return true
	case "false":
		return false
	}
	return ns != nil && ns.Labels[EnabledLabel] == "true"
}

// Identity is a workload identity: a service account of a namespace.
type Identity struct {
	Namespace, ServiceAccount string
}

// IdentityOf is the identity pod's traffic carries.
func IdentityOf(pod *corev1.Pod) Identity {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return Identity{Namespace: pod.Namespace, ServiceAccount: sa}
}

// Principal is the identity as Istio's policies and metrics write it:
// TRUSTDOMAIN/ns/NS/sa/SA.
func (id Identity) Principal(trustDomain string) string {
	return trustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// String is NS/SA.
func (id Identity) String() string { return id.Namespace + "/" + id.ServiceAccount }

// serverNameSuffix ends the TLS server name that asks a node proxy for the
// certificate of one identity: SA.NS.sa.mesh.skiff (a namespace has no dot,
// so the name parses from the right).
const serverNameSuffix = ".sa.mesh.skiff"

// ServerName is the TLS server name (SNI) under which a node proxy presents
// id's certificate.
func (id Identity) ServerName() string {
	return id.ServiceAccount + "." + id.Namespace + serverNameSuffix
}

// ParseServerName reverses ServerName.
func ParseServerName(name string) (Identity, bool) {
	rest, ok := strings.CutSuffix(name, serverNameSuffix)
	if !ok {
		return Identity{}, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return Identity{}, false
	}
	return Identity{Namespace: rest[i+1:], ServiceAccount: rest[:i]}, true
}

// Workload names a pod as Istio's metrics do: the Deployment of its
// ReplicaSet (the ReplicaSet's name without the pod-template-hash), else
// its controller's name, else the pod's own.
func Workload(pod *corev1.Pod) string {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return pod.Name
	}
	if ref.Kind == "ReplicaSet" {
		if hash := pod.Labels["pod-template-hash"]; hash != "" {
			if name, ok := strings.CutSuffix(ref.Name, "-"+hash); ok {
				return name
			}
		}
	}
	if ref.Kind == "Job" {
		if cj := pod.Labels["batch.kubernetes.io/cronjob-name"]; cj != "" {
			return cj
		}
	}
	return ref.Name
}

// podAddr is pod's IPv4 address, or the zero Addr.
func podAddr(pod *corev1.Pod) netip.Addr {
	a, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil || !a.Is4() {
		return netip.Addr{}
	}
	return a
}
