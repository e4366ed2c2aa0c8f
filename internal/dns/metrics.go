package dns

import (
	"strconv"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffdev/skiff/internal/metricsreg"
)

// metrics are the server's Prometheus collectors, under CoreDNS's names
// and labels (its metrics plugin), so dashboards and alerts written for a
// cluster's CoreDNS carry over. Every question is in the zone "." and the
// view "", as in the default Corefile's one server block.
type metrics struct {
	server    string
	requests  *prometheus.CounterVec   // server, zone, view, proto, family, type
	responses *prometheus.CounterVec   // server, zone, view, rcode, plugin
	duration  *prometheus.HistogramVec // server, zone, view, type
}

func newMetrics(reg prometheus.Registerer, listen string) (*metrics, error) {
	m := &metrics{
		server: "dns://" + listen,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coredns", Subsystem: "dns", Name: "requests_total",
			Help: "Counter of DNS requests made per zone, protocol and family.",
		}, []string{"server", "zone", "view", "proto", "family", "type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coredns", Subsystem: "dns", Name: "responses_total",
			Help: "Counter of response status codes.",
		}, []string{"server", "zone", "view", "rcode", "plugin"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "coredns", Subsystem: "dns", Name: "request_duration_seconds",
			Help:    "Histogram of the time (in seconds) each request took per zone.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16), // from 0.25ms to 8 seconds
		}, []string{"server", "zone", "view", "type"}),
	}
	if reg == nil {
		return m, nil
	}
	// A server made again in the same process (a restart) counts on.
	var err error
	if m.requests, err = metricsreg.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.responses, err = metricsreg.Register(reg, m.responses); err != nil {
		return nil, err
	}
	if m.duration, err = metricsreg.Register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// observe records one question and its answer.
func (m *metrics) observe(req, resp *dns.Msg, udp, ipv6 bool, took time.Duration) {
	proto, family, qtype := "tcp", "1", "other"
	if udp {
		proto = "udp"
	}
	if ipv6 {
		family = "2"
	}
	if len(req.Question) == 1 {
		if name, ok := dns.TypeToString[req.Question[0].Qtype]; ok {
			qtype = name
		}
	}
	m.requests.WithLabelValues(m.server, ".", "", proto, family, qtype).Inc()
	rcode, ok := dns.RcodeToString[resp.Rcode]
	if !ok {
		rcode = strconv.Itoa(resp.Rcode)
	}
	m.responses.WithLabelValues(m.server, ".", "", rcode, "").Inc()
	m.duration.WithLabelValues(m.server, ".", "", qtype).Observe(took.Seconds())
}
