package mesh

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/mesh/authz"
)

// statusPodBuilder makes pods for TestStatus: running, with an address, on
// node a, service account web, no identity condition.
type statusPodBuilder struct{ p *corev1.Pod }

func statusPod(namespace, name string) *statusPodBuilder {
	return &statusPodBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.PodSpec{NodeName: "a", ServiceAccountName: "web"},
		Status:     corev1.PodStatus{PodIP: "10.42.0.5", Phase: corev1.PodRunning},
	}}
}

// Of makes the pod a Deployment's: its ReplicaSet deploy-1234's.
func (b *statusPodBuilder) Of(deploy string) *statusPodBuilder {
	b.p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: deploy + "-1234", Controller: ptr.To(true)}}
	return b.Label("pod-template-hash", "1234")
}

func (b *statusPodBuilder) Label(k, v string) *statusPodBuilder {
	if b.p.Labels == nil {
		b.p.Labels = map[string]string{}
	}
	b.p.Labels[k] = v
	return b
}

func (b *statusPodBuilder) SA(name string) *statusPodBuilder {
	b.p.Spec.ServiceAccountName = name
	return b
}

func (b *statusPodBuilder) Node(name string) *statusPodBuilder {
	b.p.Spec.NodeName = name
	return b
}

func (b *statusPodBuilder) NoIP() *statusPodBuilder {
	b.p.Status.PodIP = ""
	return b
}

func (b *statusPodBuilder) Condition(status corev1.ConditionStatus, reason, message string) *statusPodBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{Type: IdentityCondition, Status: status, Reason: reason, Message: message})
	return b
}

// Issued records a certificate for the pod's identity expiring at expires.
func (b *statusPodBuilder) Issued(expires string) *statusPodBuilder {
	id := IdentityOf(b.p)
	return b.Condition(corev1.ConditionTrue, ReasonCertificateIssued, "spiffe://cluster.local/ns/"+id.Namespace+"/sa/"+id.ServiceAccount+" expires "+expires)
}

func (b *statusPodBuilder) Failed(message string) *statusPodBuilder {
	return b.Condition(corev1.ConditionFalse, ReasonCertificateFailed, message)
}

func (b *statusPodBuilder) Obj() *corev1.Pod { return b.p }

func statusNamespace(name string, enrolled bool) *corev1.Namespace {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if enrolled {
		n.Labels = map[string]string{EnabledLabel: "true"}
	}
	return n
}

func statusAuthz(namespace, name string, matchLabels map[string]string) *v1alpha1.AuthorizationPolicy {
	p := &v1alpha1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if matchLabels != nil {
		p.Spec.Selector = &v1alpha1.WorkloadSelector{MatchLabels: matchLabels}
	}
	return p
}

func statusPeer(namespace, name string, matchLabels map[string]string, mode v1alpha1.MutualTLSMode) *v1alpha1.PeerAuthentication {
	pa := &v1alpha1.PeerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       v1alpha1.PeerAuthenticationSpec{MTLS: &v1alpha1.MutualTLS{Mode: mode}},
	}
	if matchLabels != nil {
		pa.Spec.Selector = &v1alpha1.WorkloadSelector{MatchLabels: matchLabels}
	}
	return pa
}

func TestStatus(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	shop, other, off := statusNamespace("shop", true), statusNamespace("other", true), statusNamespace("off", false)
	const webID = "spiffe://cluster.local/ns/shop/sa/web"

	for _, tc := range []struct {
		name       string
		pods       []*corev1.Pod
		namespaces []*corev1.Namespace
		authz      []*v1alpha1.AuthorizationPolicy
		peer       []*v1alpha1.PeerAuthentication
		want       []WorkloadStatus
	}{{
		name:       "nothing enrolled: an empty list, not nil",
		pods:       []*corev1.Pod{statusPod("off", "web-1").Obj()},
		namespaces: []*corev1.Namespace{off},
		want:       []WorkloadStatus{},
	}, {
		name: "a Deployment's pods are one workload; the earliest expiry counts",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-b").Of("web").Issued("2026-12-07T06:00:00Z").Obj(),
			statusPod("shop", "web-1234-a").Of("web").Issued("2026-12-07T05:00:00Z").Obj(),
		},
		namespaces: []*corev1.Namespace{shop},
		want: []WorkloadStatus{{Namespace: "shop", Workload: "web", Pods: 2, Ready: 2, Identity: webID,
			Expiry: at("2026-12-07T05:00:00Z"), MTLS: authz.ModePermissive}},
	}, {
		name: "enrolment: pods opting in and out, pods without an address, unknown namespaces",
		pods: []*corev1.Pod{
			statusPod("shop", "out").Label(EnabledLabel, "false").Obj(),
			statusPod("shop", "starting").NoIP().Obj(),
			statusPod("off", "in").Label(EnabledLabel, "true").Obj(),
			statusPod("off", "not").Obj(),
			statusPod("gone", "orphan").Obj(),
		},
		namespaces: []*corev1.Namespace{shop, off},
		want:       []WorkloadStatus{{Namespace: "off", Workload: "in", Pods: 1, Pending: 1, Identity: "spiffe://cluster.local/ns/off/sa/web", MTLS: authz.ModePermissive}},
	}, {
		name: "no condition yet, or status Unknown: pending; an issued certificate without a readable expiry: ready, expiry unknown",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-a").Of("web").Obj(),
			statusPod("shop", "web-1234-b").Of("web").Condition(corev1.ConditionUnknown, "", "").Obj(),
			statusPod("shop", "web-1234-c").Of("web").Condition(corev1.ConditionTrue, ReasonCertificateIssued, webID).Obj(),
			statusPod("shop", "web-1234-d").Of("web").Condition(corev1.ConditionTrue, ReasonCertificateIssued, webID+" expires tomorrow").Obj(),
		},
		namespaces: []*corev1.Namespace{shop},
		want:       []WorkloadStatus{{Namespace: "shop", Workload: "web", Pods: 4, Ready: 2, Pending: 2, Identity: webID, MTLS: authz.ModePermissive}},
	}, {
		name: "the first failure in pod name order is the problem; a failure without a message names its reason",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-c").Of("web").Failed("csr denied: pod runs on node b").Obj(),
			statusPod("shop", "web-1234-b").Of("web").Failed("signer unavailable").Obj(),
			statusPod("shop", "web-1234-a").Of("web").Issued("2026-12-07T05:00:00Z").Obj(),
			statusPod("shop", "db-0").Failed("").Obj(),
		},
		namespaces: []*corev1.Namespace{shop},
		want: []WorkloadStatus{
			{Namespace: "shop", Workload: "db-0", Pods: 1, Identity: webID, Problem: "CertificateFailed", MTLS: authz.ModePermissive},
			{Namespace: "shop", Workload: "web", Pods: 3, Ready: 1, Identity: webID, Expiry: at("2026-12-07T05:00:00Z"),
				Problem: "signer unavailable", MTLS: authz.ModePermissive},
		},
	}, {
		name: "an expired certificate is the problem when no request failed",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-a").Of("web").Issued("2026-12-07T05:00:00Z").Obj(),
			statusPod("shop", "web-1234-b").Of("web").Node("b").Issued("2026-12-06T06:00:00Z").Obj(),
		},
		namespaces: []*corev1.Namespace{shop},
		want: []WorkloadStatus{{Namespace: "shop", Workload: "web", Pods: 2, Ready: 2, Identity: webID, Expiry: now,
			Problem: "certificate of pod web-1234-b expired at 2026-12-06T06:00:00Z: is the node proxy on node b running?", MTLS: authz.ModePermissive}},
	}, {
		name: "several service accounts in one workload: sorted, comma-joined; none named is default",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-a").Of("web").SA("web").Obj(),
			statusPod("shop", "web-1234-b").Of("web").SA("").Obj(),
			statusPod("shop", "web-1234-c").Of("web").SA("web").Obj(),
		},
		namespaces: []*corev1.Namespace{shop},
		want: []WorkloadStatus{{Namespace: "shop", Workload: "web", Pods: 3, Pending: 3,
			Identity: "spiffe://cluster.local/ns/shop/sa/default," + webID, MTLS: authz.ModePermissive}},
	}, {
		name: "policies: the root namespace's and the workload's own namespace's, selected by the first pod's labels",
		pods: []*corev1.Pod{
			statusPod("shop", "web-1234-a").Of("web").Label("app", "web").Obj(),
			statusPod("shop", "web-1234-b").Of("web").Label("app", "web").Obj(),
			statusPod("shop", "db-0").Label("app", "db").Obj(),
			statusPod("other", "api").Label("app", "web").Obj(),
		},
		namespaces: []*corev1.Namespace{shop, other},
		authz: []*v1alpha1.AuthorizationPolicy{
			statusAuthz(authz.RootNamespace, "mesh-wide", nil),
			statusAuthz("shop", "namespace-wide", nil),
			statusAuthz("shop", "web-only", map[string]string{"app": "web"}),
			statusAuthz("other", "elsewhere", nil),
			func() *v1alpha1.AuthorizationPolicy {
				p := statusAuthz("shop", "for-a-gateway", nil)
				p.Spec.TargetRef = &v1alpha1.PolicyTargetReference{Kind: "Gateway", Name: "gw"}
				return p
			}(),
		},
		peer: []*v1alpha1.PeerAuthentication{
			statusPeer(authz.RootNamespace, "mesh", nil, v1alpha1.MTLSStrict),
			statusPeer("shop", "db", map[string]string{"app": "db"}, v1alpha1.MTLSDisable),
			statusPeer("other", "namespace", nil, v1alpha1.MTLSPermissive),
		},
		want: []WorkloadStatus{
			{Namespace: "other", Workload: "api", Pods: 1, Pending: 1, Identity: "spiffe://cluster.local/ns/other/sa/web", MTLS: authz.ModePermissive, AuthzPolicies: 2},
			{Namespace: "shop", Workload: "db-0", Pods: 1, Pending: 1, Identity: webID, MTLS: authz.ModeDisable, AuthzPolicies: 2},
			{Namespace: "shop", Workload: "web", Pods: 2, Pending: 2, Identity: webID, MTLS: authz.ModeStrict, AuthzPolicies: 3},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Status(tc.pods, tc.namespaces, tc.authz, tc.peer, "cluster.local", now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Status:\n got  %+v\n want %+v", got, tc.want)
			}
		})
	}
}

func TestCertificateExpiry(t *testing.T) {
	for _, tc := range []struct {
		message string
		want    time.Time
		ok      bool
	}{
		{"spiffe://cluster.local/ns/shop/sa/web expires 2026-12-07T06:00:00Z", time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC), true},
		{"spiffe://cluster.local/ns/shop/sa/web expires 2026-12-07T08:00:00+02:00  ", time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC), true},
		{"spiffe://cluster.local/ns/shop/sa/web", time.Time{}, false},
		{"spiffe://cluster.local/ns/shop/sa/web expires soon", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := certificateExpiry(tc.message)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("certificateExpiry(%q) = %v, %v; want %v, %v", tc.message, got, ok, tc.want, tc.ok)
		}
	}
}
