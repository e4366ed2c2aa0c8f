package ingress

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func tlsPolicy(name string, age time.Duration, section string, caKind, caName string) *gwv1.BackendTLSPolicy {
	p := &gwv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 1,
		CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age))}}
	ref := gwv1.LocalPolicyTargetReferenceWithSectionName{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "app"}}
	if section != "" {
		ref.SectionName = ptrTo(gwv1.SectionName(section))
	}
	p.Spec.TargetRefs = []gwv1.LocalPolicyTargetReferenceWithSectionName{ref}
	p.Spec.Validation = gwv1.BackendTLSPolicyValidation{Hostname: "app.example.com",
		CACertificateRefs: []gwv1.LocalObjectReference{{Kind: gwv1.Kind(caKind), Name: gwv1.ObjectName(caName)}}}
	return p
}

func TestBackendTLSPolicies(t *testing.T) {
	cert, err := selfSigned(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ca"},
		Data: map[string]string{"ca.crt": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))}}
	junk := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "junk"}, Data: map[string]string{"ca.crt": "not a certificate"}}
	policies := []*gwv1.BackendTLSPolicy{
		tlsPolicy("newer", time.Minute, "", "ConfigMap", "ca"),
		tlsPolicy("older", time.Hour, "", "ConfigMap", "ca"),
		tlsPolicy("port", time.Second, "https", "ConfigMap", "ca"),
		tlsPolicy("kind", time.Second, "metrics", "Secret", "ca"),
		tlsPolicy("missing", time.Second, "grpc", "ConfigMap", "nope"),
		tlsPolicy("malformed", time.Second, "admin", "ConfigMap", "junk"),
	}
	bp := newBackendTLSPolicies(policies, []*corev1.ConfigMap{ca, junk})
	svc := types.NamespacedName{Namespace: "ns", Name: "app"}

	if cfg, bad := bp.lookup(svc, "http"); bad != "" || cfg == nil || cfg.Config.ServerName != "app.example.com" || cfg.Config.RootCAs == nil {
		t.Errorf("port http: %+v %q; want the older policy's TLS", cfg, bad)
	}
	older, _ := bp.lookup(svc, "http")
	if port, _ := bp.lookup(svc, "https"); port == nil || port.ID == older.ID {
		t.Error("port https: want the policy naming the port, not the Service's")
	}
	for _, p := range []string{"metrics", "grpc", "admin"} {
		if cfg, bad := bp.lookup(svc, p); cfg != nil || bad == "" {
			t.Errorf("port %s: %v %q; want the invalid policy's refusal", p, cfg, bad)
		}
	}
	if cfg, bad := bp.lookup(types.NamespacedName{Namespace: "ns", Name: "other"}, "http"); cfg != nil || bad != "" {
		t.Error("a Service no policy targets got TLS")
	}

	bp.used[types.NamespacedName{Namespace: "ns", Name: "gw"}] = map[types.NamespacedName]bool{svc: true}
	st := bp.statuses(policies, "ctrl")
	want := map[string][2]string{
		"older":     {"True/Accepted", "True/ResolvedRefs"},
		"newer":     {"False/Conflicted", "True/ResolvedRefs"},
		"port":      {"True/Accepted", "True/ResolvedRefs"},
		"kind":      {"False/NoValidCACertificate", "False/InvalidKind"},
		"missing":   {"False/NoValidCACertificate", "False/InvalidCACertificateRef"},
		"malformed": {"False/NoValidCACertificate", "False/InvalidCACertificateRef"},
	}
	for name, w := range want {
		as := st[types.NamespacedName{Namespace: "ns", Name: name}]
		if len(as) != 1 || len(as[0].Conditions) != 2 {
			t.Errorf("%s: ancestors %+v", name, as)
			continue
		}
		c := as[0].Conditions
		got := [2]string{string(c[0].Status) + "/" + c[0].Reason, string(c[1].Status) + "/" + c[1].Reason}
		if got != w || c[0].Type != "Accepted" || c[1].Type != "ResolvedRefs" {
			t.Errorf("%s: %v, want %v", name, got, w)
		}
	}
}
