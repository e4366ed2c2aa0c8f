package ingress

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus collectors.
type metrics struct {
	requests    *prometheus.CounterVec   // kind, namespace, route, service, code
	duration    *prometheus.HistogramVec // kind, namespace, route, service
	inFlight    *prometheus.GaugeVec     // kind, namespace, route, service
	connections prometheus.Gauge
	ejections   *prometheus.CounterVec // namespace, service
	retries     *prometheus.CounterVec // namespace, service, outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	route := []string{"kind", "namespace", "route", "service"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_ingress_requests_total",
			Help: "Requests the ingress proxy answered, by route (Ingress or HTTPRoute), backend Service and status code.",
		}, append(route, "code")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_ingress_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response, by route and backend Service.",
			Buckets: prometheus.DefBuckets,
		}, route),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_ingress_requests_in_flight",
			Help: "Requests being proxied now, by route and backend Service.",
		}, route),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_ingress_active_connections",
			Help: "Client connections open to the ingress proxy.",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_ingress_endpoint_ejections_total",
			Help: "Endpoints taken out of balancing by passive health checking, by Service.",
		}, []string{"namespace", "service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_ingress_retries_total",
			Help: "Retries of routes' retry policies, by backend Service and outcome: sent, or budget_exhausted (refused by the Service's retry budget; the request got 503).",
		}, []string{"namespace", "service", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.connections, m.ejections, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ingress: register metrics: %w", err)
		}
	}
	return m, nil
}
