package server

import (
	"errors"
	"testing"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/component"
)

// New refuses configurations that could never run, before touching the
// data directory, with errors marked as configuration errors (not retried).
func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no data dir", Config{}},
		{"cluster DNS not an address", Config{Cluster: clusterconfig.Config{ClusterDNS: "dns.example"}}},
		{"cluster CIDR", Config{Cluster: clusterconfig.Config{ClusterCIDR: "10.42.0.0/99"}}},
		{"service CIDR", Config{Cluster: clusterconfig.Config{ServiceCIDR: "10.43.0.0"}}},
		{"cluster DNS outside the service CIDR", Config{Cluster: clusterconfig.Config{ClusterDNS: "10.44.0.10"}}},
		{"advertise address not an address", Config{AdvertiseAddress: "my-host"}},
		{"advertise address loopback", Config{AdvertiseAddress: "127.0.0.1"}},
		{"advertise address unspecified", Config{AdvertiseAddress: "0.0.0.0"}},
		{"advertise address link-local", Config{AdvertiseAddress: "169.254.1.1"}},
		{"upstream not an address", Config{DNSUpstreams: []string{"resolver.example"}}},
		{"upstream port out of range", Config{DNSUpstreams: []string{"192.0.2.1:0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no data dir" {
				tc.cfg.DataDir = t.TempDir()
			}
			_, err := New(tc.cfg)
			if !errors.Is(err, component.ErrConfig) {
				t.Fatalf("New: %v, want a configuration error", err)
			}
			t.Log(err)
		})
	}
}
