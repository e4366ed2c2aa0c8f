package mesh

import (
	"github.com/prometheus/client_golang/prometheus"
)

// flowLabels are the labels of Istio's standard metrics that skiff fills
// (https://istio.io/latest/docs/reference/config/metrics/), so that
// dashboards and queries written for Istio read skiff's.
var flowLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"request_protocol", "connection_security_policy", "response_flags",
}

// metrics are a node proxy's, on its own registry (served on MetricsPort).
type metrics struct {
	registry *prometheus.Registry

	tcpOpened, tcpClosed, tcpSent, tcpReceived *prometheus.CounterVec
	requests                                   *prometheus.CounterVec
	duration                                   *prometheus.HistogramVec

	denied       *prometheus.CounterVec
	certRequests *prometheus.CounterVec
	certExpiry   *prometheus.GaugeVec
	certificates prometheus.Gauge
	enrolled     prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.registry.MustRegister(c)
		return c
	}
	httpLabels := append(append([]string{}, flowLabels...), "response_code", "grpc_response_status")
	m.tcpOpened = counter("istio_tcp_connections_opened_total", "TCP connections opened.", flowLabels...)
	m.tcpClosed = counter("istio_tcp_connections_closed_total", "TCP connections closed.", flowLabels...)
	m.tcpSent = counter("istio_tcp_sent_bytes_total", "Bytes sent to the client (the response direction) over TCP connections.", flowLabels...)
	m.tcpReceived = counter("istio_tcp_received_bytes_total", "Bytes received from the client (the request direction) over TCP connections.", flowLabels...)
	m.requests = counter("istio_requests_total", "HTTP and gRPC requests (request_protocol http or grpc).", httpLabels...)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "istio_request_duration_milliseconds", Help: "Duration of HTTP and gRPC requests, in milliseconds.",
		// Istio's default buckets.
		Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000},
	}, httpLabels)
	m.registry.MustRegister(m.duration)
	m.denied = counter("skiff_mesh_denied_total", "Connections and requests the node proxy refused, by reason.", "reason", "destination_workload_namespace")
	m.certRequests = counter("skiff_mesh_certificate_requests_total", "Workload certificate requests to the mesh CA, by result.", "result")
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skiff_mesh_certificate_expiry_timestamp_seconds", Help: "When each held workload certificate expires (Unix time)."}, []string{"namespace", "service_account"})
	m.certificates = prometheus.NewGauge(prometheus.GaugeOpts{Name: "skiff_mesh_certificates", Help: "Workload certificates held."})
	m.enrolled = prometheus.NewGauge(prometheus.GaugeOpts{Name: "skiff_mesh_enrolled_pods", Help: "Enrolled pods on this node."})
	m.registry.MustRegister(m.certExpiry, m.certificates, m.enrolled)
	return m
}

// flow is one connection's metric labels.
type flow struct {
	reporter                                        string
	srcWorkload, srcNamespace, srcPrincipal         string
	dstWorkload, dstNamespace, dstPrincipal         string
	dstService, dstServiceName, dstServiceNamespace string
	protocol, security, flags                       string
}

func (f *flow) values() []string {
	v := []string{f.reporter, f.srcWorkload, f.srcNamespace, f.srcPrincipal, f.dstWorkload, f.dstNamespace, f.dstPrincipal,
		f.dstService, f.dstServiceName, f.dstServiceNamespace, f.protocol, f.security, f.flags}
	for i, s := range v {
		if s == "" {
			v[i] = "unknown"
		}
	}
	if f.flags == "" {
		v[len(v)-1] = "-" // Istio's "no flags"
	}
	return v
}
