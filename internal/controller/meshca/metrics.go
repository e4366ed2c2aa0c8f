package meshca

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffdev/skiff/internal/metricsreg"
)

// metrics count what the signer decided.
type metrics struct {
	issued       prometheus.Counter
	refused      *prometheus.CounterVec // by reason: the refusal reasons
	signDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_mesh_ca_certificates_issued_total",
			Help: "Workload certificates the mesh CA issued.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_mesh_ca_certificates_refused_total",
			Help: "Certificate signing requests the mesh CA refused, by reason (requester, request, token, pod).",
		}, []string{"reason"}),
		signDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_mesh_ca_certificate_sign_duration_seconds",
			Help:    "How long the mesh CA took to verify, approve and sign a request, its API calls included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms … 16 s
		}),
	}
	// Every reason from the start, at zero.
	for _, r := range reasons {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.issued, err = metricsreg.Register(reg, m.issued); err != nil {
		return nil, err
	}
	if m.refused, err = metricsreg.Register(reg, m.refused); err != nil {
		return nil, err
	}
	if m.signDuration, err = metricsreg.Register(reg, m.signDuration); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) issue(took time.Duration) {
	m.issued.Inc()
	m.signDuration.Observe(took.Seconds())
}

func (m *metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }
