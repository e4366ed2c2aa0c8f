package ingresslb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffdev/skiff/internal/metricsreg"
)

// metrics count the controller's syncs, as a controller that works from a
// workqueue is counted by workqueue_* (ingress-lb rebuilds one Service from
// its listers on every change instead).
type metrics struct {
	syncs    *prometheus.CounterVec // by result: success, error
	duration prometheus.Histogram
}

const controllerLabel = "ingress-lb"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "skiff_controller_syncs_total",
			Help:        "Syncs of a skiff controller, by result (success or error).",
			ConstLabels: prometheus.Labels{"controller": controllerLabel},
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "skiff_controller_sync_duration_seconds",
			Help:        "How long a sync of a skiff controller took, its API writes included.",
			ConstLabels: prometheus.Labels{"controller": controllerLabel},
			Buckets:     prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms … 16 s
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.syncs, err = metricsreg.Register(reg, m.syncs); err != nil {
		return nil, err
	}
	if m.duration, err = metricsreg.Register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// observe records one sync that began at began.
func (m *metrics) observe(began time.Time, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.syncs.WithLabelValues(result).Inc()
	m.duration.Observe(time.Since(began).Seconds())
}
