package meshca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certificateslisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiffdev/skiff/internal/pki"
)

// reconciler decides the signer's requests of one run of the controller:
// it reads them from the informer's cache, fetches the evidence through
// client and writes the verdict there.
type reconciler struct {
	client   kubernetes.Interface
	ca       *pki.CA
	domain   string
	clock    clock.PassiveClock
	recorder record.EventRecorder
	log      *slog.Logger
	metrics  *metrics

	csrs  certificateslisters.CertificateSigningRequestLister
	queue workqueue.TypedRateLimitingInterface[string]
}

// processNext reconciles one request; it returns false once the queue is
// shut down.
func (r *reconciler) processNext(ctx context.Context) bool {
	name, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(name)
	if err := r.sync(ctx, name); err != nil {
		switch {
		case ctx.Err() != nil:
		case apierrors.IsConflict(err):
			// The cache lagged behind this controller's own write.
			r.log.Debug("reconcile of a stale request; will retry", "csr", name, "err", err)
		default:
			r.log.Warn("reconcile failed; will retry", "csr", name, "err", err)
		}
		r.queue.AddRateLimited(name)
		return true
	}
	r.queue.Forget(name)
	return true
}

// sync decides the request name, if it is the signer's and undecided.
func (r *reconciler) sync(ctx context.Context, name string) error {
	csr, err := r.csrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if csr.Spec.SignerName != SignerName || len(csr.Status.Certificate) > 0 ||
		hasCondition(csr, certificatesv1.CertificateDenied) || hasCondition(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	began := r.clock.Now()
	ev := evidence{csr: csr}
	d := decide(r.domain, ev)
	for d.next != needNothing {
		switch d.next {
		case needReview:
			st, err := r.review(ctx, csr.Annotations[TokenAnnotation])
			if err != nil {
				return fmt.Errorf("review the token of CertificateSigningRequest %s: %w", name, err)
			}
			ev.review = st
		case needPod:
			pod, err := r.client.CoreV1().Pods(d.id.Namespace).Get(ctx, d.podName, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				ev.podMissing = true
			case err != nil:
				return fmt.Errorf("get pod %s/%s of CertificateSigningRequest %s: %w", d.id.Namespace, d.podName, name, err)
			default:
				ev.pod = pod
			}
		}
		d = decide(r.domain, ev)
	}
	if d.refused != nil {
		return r.refuse(ctx, csr, d, ev.pod)
	}
	return r.issue(ctx, csr, d, began)
}

// review has the API server review token for the audience Audience.
func (r *reconciler) review(ctx context.Context, token string) (*authenticationv1.TokenReviewStatus, error) {
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return &tr.Status, nil
}

// refuse denies csr (or, if it was approved already, marks it Failed) with
// the refusal's message, and tells the pod, when there is one.
func (r *reconciler) refuse(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, d decision, pod *corev1.Pod) error {
	up := csr.DeepCopy()
	cond := certificatesv1.CertificateSigningRequestCondition{
		Status:         corev1.ConditionTrue,
		Reason:         ReasonRefused,
		Message:        d.refused.message,
		LastUpdateTime: metav1.NewTime(r.clock.Now()),
	}
	api := r.client.CertificatesV1().CertificateSigningRequests()
	var err error
	if hasCondition(csr, certificatesv1.CertificateApproved) {
		// Approved and Denied exclude each other; Failed is the signer's.
		cond.Type = certificatesv1.CertificateFailed
		up.Status.Conditions = append(up.Status.Conditions, cond)
		_, err = api.UpdateStatus(ctx, up, metav1.UpdateOptions{})
	} else {
		cond.Type = certificatesv1.CertificateDenied
		up.Status.Conditions = append(up.Status.Conditions, cond)
		_, err = api.UpdateApproval(ctx, csr.Name, up, metav1.UpdateOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("refuse CertificateSigningRequest %s: %w", csr.Name, err)
	}
	r.metrics.refuse(d.refused.reason)
	r.log.Info("refused a mesh certificate", "csr", csr.Name, "requester", csr.Spec.Username,
		"spiffeID", spiffeIDOf(d.id), "condition", cond.Type, "reason", d.refused.reason, "message", d.refused.message)
	if pod != nil {
		r.recorder.Eventf(pod, corev1.EventTypeWarning, EventRefused,
			"CertificateSigningRequest %s of node %s refused: %s", csr.Name, d.id.Node, d.refused.message)
	}
	return nil
}

// issue approves csr unless it is approved already, then signs it.
func (r *reconciler) issue(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, d decision, began time.Time) error {
	api := r.client.CertificatesV1().CertificateSigningRequests()
	if !hasCondition(csr, certificatesv1.CertificateApproved) {
		up := csr.DeepCopy()
		up.Status.Conditions = append(up.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type:           certificatesv1.CertificateApproved,
			Status:         corev1.ConditionTrue,
			Reason:         ReasonVerified,
			Message:        fmt.Sprintf("node %s runs a pod of service account %s/%s", d.id.Node, d.id.Namespace, d.id.ServiceAccount),
			LastUpdateTime: metav1.NewTime(r.clock.Now()),
		})
		approved, err := api.UpdateApproval(ctx, csr.Name, up, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("approve CertificateSigningRequest %s: %w", csr.Name, err)
		}
		csr = approved
	}
	chain, notAfter, err := sign(r.ca, d, csr.Spec.ExpirationSeconds, r.clock.Now())
	if err != nil {
		return fmt.Errorf("sign CertificateSigningRequest %s: %w", csr.Name, err)
	}
	up := csr.DeepCopy()
	up.Status.Certificate = chain
	if _, err := api.UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write the certificate of CertificateSigningRequest %s: %w", csr.Name, err)
	}
	r.metrics.issue(r.clock.Since(began))
	r.log.Info("issued a mesh certificate", "csr", csr.Name, "node", d.id.Node, "spiffeID", d.id.ID.String(), "notAfter", notAfter)
	return nil
}

func spiffeIDOf(id Identity) string {
	if id.ID == nil {
		return ""
	}
	return id.ID.String()
}

// hasCondition reports whether csr has a condition of type t that is true
// (an empty status counts as true, as the API server defaults it).
func hasCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && (c.Status == corev1.ConditionTrue || c.Status == "") {
			return true
		}
	}
	return false
}

// sign signs a certificate for d's identity and key, dated now, and
// returns status.certificate: the leaf's PEM, then the CA certificate's
// (the trust anchor, last).
func sign(ca *pki.CA, d decision, expirationSeconds *int32, now time.Time) (chain []byte, notAfter time.Time, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, time.Time{}, err
	}
	serial.SetBit(serial, 127, 1) // a full 128 bits, never zero
	tmpl := leafTemplate(d.id.ID, serial, now, expirationSeconds, ca.Cert.NotAfter)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, d.request.PublicKey, ca.Key)
	if err != nil {
		return nil, time.Time{}, err
	}
	chain = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	return chain, tmpl.NotAfter, nil
}
