package authz

import (
	"cmp"
	"strconv"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// Mode is a workload's mutual TLS mode on a port.
type Mode string

// The modes PeerMode answers.
const (
	// ModeDisable: connections to the workload are not tunneled in mutual
	// TLS.
	ModeDisable Mode = "DISABLE"
	// ModePermissive: the workload accepts mutual TLS and plaintext (the
	// default).
	ModePermissive Mode = "PERMISSIVE"
	// ModeStrict: the workload accepts only mutual TLS from the mesh.
	ModeStrict Mode = "STRICT"
)

// PeerMode is the mutual TLS mode of a pod of podNamespace with podLabels
// on port, from pas, the PeerAuthentications that apply to it (others are
// skipped, so passing every policy is correct too). The package doc is the
// specification.
func PeerMode(pas []*v1alpha1.PeerAuthentication, rootNamespace, podNamespace string, podLabels map[string]string, port int) Mode {
	var mesh, namespace, workload *v1alpha1.PeerAuthentication
	for _, pa := range pas {
		if !PeerAuthenticationApplies(pa, rootNamespace, podNamespace, podLabels) {
			continue
		}
		selects := pa.Spec.Selector != nil && len(pa.Spec.Selector.MatchLabels) > 0
		switch {
		case !selects && pa.Namespace == rootNamespace:
			mesh = older(mesh, pa)
		case !selects:
			namespace = older(namespace, pa)
		case pa.Namespace != rootNamespace:
			workload = older(workload, pa)
		}
		// A policy with a selector in the root namespace counts at no
		// level, as in Istio.
	}

	mode := ModePermissive
	for _, pa := range []*v1alpha1.PeerAuthentication{mesh, namespace, workload} {
		if pa == nil {
			continue
		}
		if m, ok := modeOf(pa.Spec.MTLS); ok {
			mode = m
		}
	}
	if workload != nil {
		if portLevel, ok := workload.Spec.PortLevelMTLS[strconv.Itoa(port)]; ok {
			if m, ok := modeOf(&portLevel); ok {
				mode = m
			}
		}
	}
	return mode
}

// older is the older of a (possibly nil) and b: creationTimestamp, then
// name, then namespace.
func older(a, b *v1alpha1.PeerAuthentication) *v1alpha1.PeerAuthentication {
	if a == nil {
		return b
	}
	c := cmp.Or(
		a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Namespace, b.Namespace),
	)
	if c <= 0 {
		return a
	}
	return b
}

// modeOf is the mode mtls sets; false when it inherits (absent, UNSET, or
// a value the schema would have refused).
func modeOf(mtls *v1alpha1.MutualTLS) (Mode, bool) {
	if mtls == nil {
		return "", false
	}
	switch mtls.Mode {
	case v1alpha1.MTLSDisable:
		return ModeDisable, true
	case v1alpha1.MTLSPermissive:
		return ModePermissive, true
	case v1alpha1.MTLSStrict:
		return ModeStrict, true
	default:
		return "", false
	}
}
