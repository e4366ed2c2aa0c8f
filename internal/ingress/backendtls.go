package ingress

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// BackendTLS is how the proxy speaks to a backend a BackendTLSPolicy
// targets: TLS, with the policy's hostname as SNI, verified against its CA
// certificates (or the system's) and its hostname or subjectAltNames.
type BackendTLS struct {
	// ID names the configuration (policy, version, CA): the proxy keeps
	// one connection pool per ID.
	ID     string
	Config *tls.Config
}

// backendTLSTarget is what a policy targets: a Service, and a port name
// (sectionName) or "" for all its ports.
type backendTLSTarget struct {
	svc     types.NamespacedName
	section string
}

// backendTLSPolicies are the BackendTLSPolicies as a build applies them.
// Of two policies with one target (a Service, or a Service and port) the
// older wins and the other is Conflicted; a policy naming the port is
// more specific than one naming the Service alone, and both hold.
type backendTLSPolicies struct {
	byTarget   map[backendTLSTarget]*gwv1.BackendTLSPolicy
	tls        map[types.NamespacedName]*BackendTLS // valid policies' configurations
	invalid    map[types.NamespacedName]metav1.Condition
	conflicted map[types.NamespacedName]bool
	// used lists, per Gateway, the Services its accepted routes send to.
	used map[types.NamespacedName]map[types.NamespacedName]bool
}

func newBackendTLSPolicies(policies []*gwv1.BackendTLSPolicy, configMaps []*corev1.ConfigMap) *backendTLSPolicies {
	bp := &backendTLSPolicies{
		byTarget:   map[backendTLSTarget]*gwv1.BackendTLSPolicy{},
		tls:        map[types.NamespacedName]*BackendTLS{},
		invalid:    map[types.NamespacedName]metav1.Condition{},
		conflicted: map[types.NamespacedName]bool{},
		used:       map[types.NamespacedName]map[types.NamespacedName]bool{},
	}
	cms := map[types.NamespacedName]*corev1.ConfigMap{}
	for _, cm := range configMaps {
		cms[objKey(&cm.ObjectMeta)] = cm
	}
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, c *gwv1.BackendTLSPolicy) int { return olderObject(&a.ObjectMeta, &c.ObjectMeta) })
	for _, p := range sorted {
		k := objKey(&p.ObjectMeta)
		for _, t := range tlsTargets(p) {
			if _, taken := bp.byTarget[t]; taken {
				bp.conflicted[k] = true
				continue
			}
			bp.byTarget[t] = p
		}
		cfg, reason, err := backendTLSConfig(p, cms)
		if err != nil {
			bp.invalid[k] = condition(string(gwv1.BackendTLSPolicyConditionResolvedRefs), false, reason, err.Error(), p.Generation)
			continue
		}
		bp.tls[k] = cfg
	}
	return bp
}

// tlsTargets are the Services (and ports) p targets; other kinds are
// ignored.
func tlsTargets(p *gwv1.BackendTLSPolicy) []backendTLSTarget {
	var out []backendTLSTarget
	for _, ref := range p.Spec.TargetRefs {
		if ref.Group == "" && ref.Kind == "Service" {
			out = append(out, backendTLSTarget{svc: types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)}, section: string(ptrValue(ref.SectionName))})
		}
	}
	return out
}

// backendTLSConfig builds p's TLS configuration; on a bad CA reference it
// returns the ResolvedRefs reason and why.
func backendTLSConfig(p *gwv1.BackendTLSPolicy, cms map[types.NamespacedName]*corev1.ConfigMap) (*BackendTLS, string, error) {
	v := p.Spec.Validation
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s %d %s %v\n", p.Namespace, p.Name, p.Generation, v.Hostname, v.SubjectAltNames)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: string(v.Hostname)}
	if len(v.CACertificateRefs) > 0 {
		pool := x509.NewCertPool()
		for _, ref := range v.CACertificateRefs {
			if ref.Group != "" || ref.Kind != "ConfigMap" {
				return nil, string(gwv1.BackendTLSPolicyReasonInvalidKind),
					fmt.Errorf("caCertificateRef %s is a %s/%s; a ConfigMap (key ca.crt) is expected", ref.Name, ref.Group, ref.Kind)
			}
			cm := cms[types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)}]
			if cm == nil {
				return nil, string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Errorf("ConfigMap %s/%s not found", p.Namespace, ref.Name)
			}
			pem := cm.Data["ca.crt"]
			if !pool.AppendCertsFromPEM([]byte(pem)) {
				return nil, string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Errorf("ConfigMap %s/%s has no PEM certificate under ca.crt", p.Namespace, ref.Name)
			}
			h.Write([]byte(pem))
		}
		cfg.RootCAs = pool
	} else if v.WellKnownCACertificates == nil || *v.WellKnownCACertificates != gwv1.WellKnownCACertificatesSystem {
		return nil, string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), errors.New("neither caCertificateRefs nor wellKnownCACertificates: System")
	}
	if len(v.SubjectAltNames) > 0 {
		// The certificate must name one of them; the hostname is only SNI.
		sans := slices.Clone(v.SubjectAltNames)
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true // verified below, against sans
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the backend sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return err
			}
			for _, san := range sans {
				switch san.Type {
				case gwv1.HostnameSubjectAltNameType:
					if leaf.VerifyHostname(string(san.Hostname)) == nil {
						return nil
					}
				case gwv1.URISubjectAltNameType:
					for _, u := range leaf.URIs {
						if want, err := url.Parse(string(san.URI)); err == nil && u.String() == want.String() {
							return nil
						}
					}
				}
			}
			return fmt.Errorf("the backend's certificate names none of the policy's subjectAltNames")
		}
	}
	return &BackendTLS{ID: hex.EncodeToString(h.Sum(nil))[:16], Config: cfg}, "", nil
}

// lookup is the TLS of Service svc's port portName, nil for plain
// traffic; invalid is set when the policy that applies is not valid
// (its requests then fail).
func (bp *backendTLSPolicies) lookup(svc types.NamespacedName, portName string) (cfg *BackendTLS, invalid string) {
	if bp == nil {
		return nil, ""
	}
	p := bp.byTarget[backendTLSTarget{svc: svc, section: portName}]
	if p == nil || portName == "" {
		p = cmp.Or(p, bp.byTarget[backendTLSTarget{svc: svc}])
	}
	if p == nil {
		return nil, ""
	}
	k := objKey(&p.ObjectMeta)
	if c, ok := bp.invalid[k]; ok {
		return nil, fmt.Sprintf("BackendTLSPolicy %s is not valid: %s", k, c.Message)
	}
	return bp.tls[k], ""
}

// use records that an accepted route of Gateway gw sends to the backends
// of action.
func (bp *backendTLSPolicies) use(gw types.NamespacedName, action []*RuleAction) {
	usedBy(bp.used, gw, action)
}

// statuses are the ancestor entries skiff publishes for each policy: one
// per Gateway whose routes send to a Service it targets, with Accepted
// (Conflicted, or NoValidCACertificate) and ResolvedRefs.
func (bp *backendTLSPolicies) statuses(policies []*gwv1.BackendTLSPolicy, ctrl string) map[types.NamespacedName][]gwv1.PolicyAncestorStatus {
	out := map[types.NamespacedName][]gwv1.PolicyAncestorStatus{}
	for _, p := range policies {
		k := objKey(&p.ObjectMeta)
		accepted := condition(string(gwv1.PolicyConditionAccepted), true, string(gwv1.PolicyReasonAccepted), "Policy applied to the Services it targets", p.Generation)
		resolved := condition(string(gwv1.BackendTLSPolicyConditionResolvedRefs), true, string(gwv1.BackendTLSPolicyReasonResolvedRefs), "CA certificates resolved", p.Generation)
		switch c, bad := bp.invalid[k]; {
		case bad:
			resolved = c
			accepted = condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.BackendTLSPolicyReasonNoValidCACertificate), c.Message, p.Generation)
		case bp.conflicted[k]:
			accepted = condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.PolicyReasonConflicted),
				"an older BackendTLSPolicy targets the same Service and port; it applies there", p.Generation)
		}
		var services []types.NamespacedName
		for _, t := range tlsTargets(p) {
			services = append(services, t.svc)
		}
		out[k] = ancestorsOf(bp.used, services, ctrl, accepted, resolved)
	}
	return out
}
