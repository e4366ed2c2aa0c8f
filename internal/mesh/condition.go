package mesh

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// IdentityCondition is the pod condition in which the node proxy records an
// enrolled pod's mesh identity: True (reason CertificateIssued, message
// "SPIFFE-ID expires RFC3339") or False (reason CertificateFailed, the
// error). `kubectl describe pod` and `skiff mesh status` show it.
const IdentityCondition corev1.PodConditionType = "mesh.skiff.dev/Identity"

// Reasons of IdentityCondition.
const (
	ReasonCertificateIssued = "CertificateIssued"
	ReasonCertificateFailed = "CertificateFailed"
)

// identityCondition is what IdentityCondition should say for id now (ok
// false while the first request is still under way).
func (s *identities) identityCondition(id Identity) (c corev1.PodCondition, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ic := s.certs[id]
	if ic == nil {
		return c, false
	}
	c.Type = IdentityCondition
	switch {
	case ic.cert != nil:
		c.Status, c.Reason = corev1.ConditionTrue, ReasonCertificateIssued
		c.Message = "spiffe://" + id.Principal(s.trustDomain) + " expires " + ic.notAfter.UTC().Format(time.RFC3339)
	case ic.err != nil:
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, ReasonCertificateFailed, ic.err.Error()
	default:
		return c, false
	}
	return c, true
}

// setIdentityCondition writes pod's IdentityCondition when it changed (the
// node may write the status of its own pods).
func (p *Proxy) setIdentityCondition(ctx context.Context, pod *corev1.Pod) {
	want, ok := p.ids.identityCondition(IdentityOf(pod))
	if !ok {
		return
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == IdentityCondition && c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
			return
		}
	}
	want.LastTransitionTime = metav1.NewTime(p.cfg.Clock.Now())
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{want}}})
	if err != nil {
		return
	}
	if _, err := p.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		p.cfg.Log.Debug("mesh identity condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}
