package storage

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiffdev/skiff/internal/metricsreg"
)

// etcdFamilies are the name prefixes of the embedded etcd's own metrics,
// as etcd names them (the API server's etcd_request_* are its own, on its
// registry already).
var etcdFamilies = []string{"etcd_server_", "etcd_disk_", "etcd_network_", "etcd_mvcc_", "etcd_debugging_", "etcd_snap_", "etcd_cluster_"}

// RegisterEtcdMetrics has reg (the registry the API server's /metrics
// serves) carry the embedded etcd's own metrics, which etcd registers with
// Prometheus's default registry, under their own names. Registering twice
// is harmless.
func RegisterEtcdMetrics(reg prometheus.Registerer) error {
	_, err := metricsreg.Register(reg, etcdCollector{from: prometheus.DefaultGatherer})
	return err
}

// etcdCollector re-exports the etcd families of another registry.
type etcdCollector struct{ from prometheus.Gatherer }

// etcdCollectorDesc makes the collector a checked one, so that a second
// registration is refused rather than doubling every series.
var etcdCollectorDesc = prometheus.NewDesc("skiff_etcd_metrics_reexported", "The embedded etcd's metrics are re-exported here.", nil, nil)

func (etcdCollector) Describe(ch chan<- *prometheus.Desc) { ch <- etcdCollectorDesc }

func (c etcdCollector) Collect(ch chan<- prometheus.Metric) {
	families, _ := c.from.Gather() // what could be gathered is still worth exporting
	for _, f := range families {
		if !etcdFamily(f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			if pm, err := constMetric(f, m); err == nil {
				ch <- pm
			}
		}
	}
}

func etcdFamily(name string) bool {
	for _, p := range etcdFamilies {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// constMetric turns one gathered sample back into a prometheus.Metric.
func constMetric(f *dto.MetricFamily, m *dto.Metric) (prometheus.Metric, error) {
	names := make([]string, 0, len(m.GetLabel()))
	values := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		names = append(names, l.GetName())
		values = append(values, l.GetValue())
	}
	desc := prometheus.NewDesc(f.GetName(), f.GetHelp(), names, nil)
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
	case dto.MetricType_GAUGE:
		return prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		buckets := make(map[float64]uint64, len(h.GetBucket()))
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		return prometheus.NewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		quantiles := make(map[float64]float64, len(s.GetQuantile()))
		for _, q := range s.GetQuantile() {
			quantiles[q.GetQuantile()] = q.GetValue()
		}
		return prometheus.NewConstSummary(desc, s.GetSampleCount(), s.GetSampleSum(), quantiles, values...)
	default:
		return prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
	}
}
