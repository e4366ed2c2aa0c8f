package mesh

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/mesh/authz"
)

// policies is a snapshot of the cluster's mesh security policies, rebuilt
// after every change.
type policies struct {
	authz []*v1alpha1.AuthorizationPolicy
	peer  []*v1alpha1.PeerAuthentication
}

// loadPolicies converts the informers' objects.
func loadPolicies(authzStore, peerStore cache.Store) *policies {
	ps := &policies{}
	for _, o := range authzStore.List() {
		var p v1alpha1.AuthorizationPolicy
		if u, ok := o.(*unstructured.Unstructured); ok && runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p) == nil {
			ps.authz = append(ps.authz, &p)
		}
	}
	for _, o := range peerStore.List() {
		var p v1alpha1.PeerAuthentication
		if u, ok := o.(*unstructured.Unstructured); ok && runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p) == nil {
			ps.peer = append(ps.peer, &p)
		}
	}
	return ps
}

// Admit decides whether a connection from peer (the zero Identity for a
// plaintext source) at address from may reach pod's port: the pod's
// PeerAuthentication mode first (strict refuses plaintext), then its
// AuthorizationPolicies. A refusal comes with its metric reason and a
// message that names the deciding policy.
func (ps *policies) Admit(pod *corev1.Pod, port uint16, peer Identity, from netip.Addr, trustDomain string) (reason, message string, ok bool) {
	return ps.decide(pod, port, peer, from, trustDomain, nil)
}

// AdmitRequest is Admit for one HTTP request on an admitted connection.
func (ps *policies) AdmitRequest(pod *corev1.Pod, port uint16, peer Identity, from netip.Addr, trustDomain string, r *http.Request) (reason, message string, ok bool) {
	return ps.decide(pod, port, peer, from, trustDomain, r)
}

func (ps *policies) decide(pod *corev1.Pod, port uint16, peer Identity, from netip.Addr, trustDomain string, r *http.Request) (reason, message string, ok bool) {
	if ps == nil {
		return "policies_unknown", "the node proxy has not read the mesh policies yet", false
	}
	if peer == (Identity{}) {
		if authz.PeerMode(ps.peer, authz.RootNamespace, pod.Namespace, pod.Labels, int(port)) == authz.ModeStrict {
			return "plaintext_refused", "mutual TLS is STRICT for this port", false
		}
	}
	req := authz.Request{SourceIP: from, DestinationPort: int(port)}
	if peer != (Identity{}) {
		req.SourcePrincipal, req.SourceNamespace = peer.Principal(trustDomain), peer.Namespace
	}
	if r != nil {
		req.HTTP, req.Method, req.Path, req.Host, req.Headers = true, r.Method, r.URL.RequestURI(), r.Host, r.Header
	}
	d := authz.Evaluate(ps.applying(pod), req)
	if !d.Allow {
		return "denied_by_policy", d.Reason, false
	}
	return "", "", true
}

// applying are the AuthorizationPolicies that apply to pod.
func (ps *policies) applying(pod *corev1.Pod) []*v1alpha1.AuthorizationPolicy {
	var out []*v1alpha1.AuthorizationPolicy
	for _, p := range ps.authz {
		if authz.Applies(p, authz.RootNamespace, pod.Namespace, pod.Labels) {
			out = append(out, p)
		}
	}
	return out
}

// decidesPerRequest reports whether a connection to pod that its policies
// refuse as plain TCP may still carry HTTP requests they allow: a rule
// names HTTP attributes.
func (ps *policies) decidesPerRequest(pod *corev1.Pod) bool {
	return ps != nil && usesHTTPFields(ps.applying(pod))
}

// denials reports refused connections as Warning events on the
// destination pod, at most one per pod and reason a minute (a refused
// client may retry many times a second).
type denials struct {
	p *Proxy

	mu   sync.Mutex // guards last
	last map[string]time.Time
}

func (d *denials) report(ctx context.Context, pod *corev1.Pod, reason, message string) {
	key := pod.Namespace + "/" + pod.Name + "/" + reason
	now := d.p.cfg.Clock.Now()
	d.mu.Lock()
	if d.last == nil {
		d.last = map[string]time.Time{}
	}
	if t, ok := d.last[key]; ok && now.Sub(t) < time.Minute {
		d.mu.Unlock()
		return
	}
	d.last[key] = now
	for k, t := range d.last {
		if now.Sub(t) > time.Minute {
			delete(d.last, k)
		}
	}
	d.mu.Unlock()
	ts := metav1.NewTime(now)
	_, _ = d.p.cfg.Client.CoreV1().Events(pod.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "MeshConnectionDenied",
		Message:        message,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "skiff-mesh", Host: d.p.cfg.NodeName},
		FirstTimestamp: ts, LastTimestamp: ts, Count: 1,
		ReportingController: "skiff.dev/mesh", ReportingInstance: d.p.cfg.NodeName,
	}, metav1.CreateOptions{})
}
