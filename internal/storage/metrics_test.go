package storage

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestEtcdMetricsReexported(t *testing.T) {
	src := prometheus.NewRegistry()
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_has_leader", Help: "Whether or not a leader exists."})
	proposals := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_server_proposals_committed_total", Help: "Committed."}, []string{"kind"})
	fsync := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcd_disk_wal_fsync_duration_seconds", Help: "Fsync.", Buckets: []float64{0.001, 0.01}})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_goroutines_elsewhere", Help: "Not etcd's."})
	src.MustRegister(leader, proposals, fsync, other)
	leader.Set(1)
	proposals.WithLabelValues("a").Add(3)
	fsync.Observe(0.005)

	dst := prometheus.NewRegistry()
	dst.MustRegister(etcdCollector{from: src})
	if err := dst.Register(etcdCollector{from: src}); err == nil {
		t.Error("a second registration was accepted: every series would be doubled")
	}
	want := `
# HELP etcd_disk_wal_fsync_duration_seconds Fsync.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 0
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.01"} 1
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 1
etcd_disk_wal_fsync_duration_seconds_sum 0.005
etcd_disk_wal_fsync_duration_seconds_count 1
# HELP etcd_server_has_leader Whether or not a leader exists.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_server_proposals_committed_total Committed.
# TYPE etcd_server_proposals_committed_total counter
etcd_server_proposals_committed_total{kind="a"} 3
`
	if err := testutil.GatherAndCompare(dst, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(dst, "go_goroutines_elsewhere"); n != 0 {
		t.Errorf("a family that is not etcd's was re-exported")
	}
}
