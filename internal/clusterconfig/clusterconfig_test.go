package clusterconfig

import (
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		in   Config
		want Config
	}{
		{Config{}, Default()},
		{Config{ServiceCIDR: "10.96.0.0/12"}, Config{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.96.0.0/12", ClusterDNS: "10.96.0.10", ClusterDomain: "cluster.local"}},
		{Config{ServiceCIDR: "172.20.0.0/16", ClusterDNS: "172.20.0.53"}, Config{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "172.20.0.0/16", ClusterDNS: "172.20.0.53", ClusterDomain: "cluster.local"}},
	} {
		got := tc.in
		got.Defaults()
		if got != tc.want {
			t.Errorf("%+v.Defaults() = %+v, want %+v", tc.in, got, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("defaulted %+v: %v", got, err)
		}
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.ClusterCIDR = "10.42.0.0/99" }, `--cluster-cidr "10.42.0.0/99" is not a CIDR`},
		{func(c *Config) { c.ServiceCIDR = "nope" }, `--service-cidr "nope" is not a CIDR`},
		{func(c *Config) { c.ServiceCIDR = "10.42.128.0/20" }, "--cluster-cidr 10.42.0.0/16 and --service-cidr 10.42.128.0/20 overlap"},
		{func(c *Config) { c.ClusterDNS = "dns.example" }, `--cluster-dns "dns.example" is not an IP address`},
		{func(c *Config) { c.ClusterDNS = "10.44.0.10" }, "--cluster-dns 10.44.0.10 is outside --service-cidr 10.43.0.0/16"},
		{func(c *Config) { c.ClusterDomain = "a..b" }, `--cluster-domain "a..b"`},
		{func(c *Config) { c.GatewayAPIChannel = "beta" }, `--gateway-api-channel "beta": want standard or experimental`},
	} {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", c, err, tc.want)
		}
	}
}

func TestDecode(t *testing.T) {
	c, err := Decode([]byte(`{"clusterCIDR":"10.0.0.0/8","serviceCIDR":"172.16.0.0/16","clusterDNS":"172.16.0.10","clusterDomain":"example.internal"}`))
	if err != nil || c.ClusterCIDR != "10.0.0.0/8" || c.ClusterDomain != "example.internal" {
		t.Errorf("Decode = %+v, %v", c, err)
	}
	if _, err := Decode([]byte(`{"clusterCIDR":"10.0.0.0/8"}`)); err == nil {
		t.Error("Decode of an incomplete configuration succeeded")
	}
}
