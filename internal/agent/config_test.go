package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/skiffdev/skiff/internal/component"
)

const testToken = "K10" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "::abcdef.0123456789abcdef"

// New refuses settings the node could never run with, as configuration
// errors naming the flag, before anything starts.
func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		want string
		edit func(*Config)
	}{
		{"--server is required", func(c *Config) { c.Server = "" }},
		{"--pod-network", func(c *Config) { c.PodNetwork = "bogus" }},
		{"--node-ip", func(c *Config) { c.NodeIP = "300.1.1.1" }},
		{"--node-name", func(c *Config) { c.NodeName = "Node_1" }},
		{"--node-label", func(c *Config) { c.Labels = map[string]string{"": "x"} }},
		{"--node-label", func(c *Config) { c.Labels = map[string]string{"tier": "not a value"} }},
		{"--kubelet-arg", func(c *Config) { c.KubeletArgs = []string{"nonsense"} }},
		{"--kube-proxy-arg", func(c *Config) { c.ProxyArgs = []string{"nonsense"} }},
		{"--lb-server-port", func(c *Config) { c.LBServerPort = 70000 }},
		{"--server", func(c *Config) { c.Server = "192.0.2.1:6443" }},
	} {
		cfg := Config{Server: "https://192.0.2.1:6443", Token: testToken, DataDir: t.TempDir(), NodeName: "n1"}
		tc.edit(&cfg)
		_, err := New(cfg)
		if !errors.Is(err, component.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want a configuration error naming it", tc.want, err)
		}
	}
	if _, err := New(Config{Server: "https://192.0.2.1:6443", Token: testToken, DataDir: t.TempDir(), NodeName: "n1",
		Labels: map[string]string{"tier": "edge"}, KubeletArgs: []string{"v=2"}}); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
}

// The node's kubeconfigs point at its load balancer, whose fallback is
// --server (port 443 when the URL has none); without the load balancer
// they point at --server.
func TestAPIServerURL(t *testing.T) {
	for _, tc := range []struct {
		cfg                Config
		wantURL, wantFirst string
	}{
		{Config{Server: "https://192.0.2.1:6443"}, "https://127.0.0.1:6444", "192.0.2.1:6443"},
		{Config{Server: "https://api.example:6443", LBServerPort: 7000}, "https://127.0.0.1:7000", "api.example:6443"},
		{Config{Server: "https://[2001:db8::1]"}, "https://127.0.0.1:6444", "[2001:db8::1]:443"},
		{Config{Server: "https://127.0.0.1:6443", DisableLB: true}, "https://127.0.0.1:6443", ""},
	} {
		tc.cfg.Token, tc.cfg.DataDir, tc.cfg.NodeName = testToken, t.TempDir(), "n1"
		a, err := New(tc.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", tc.cfg, err)
		}
		if a.apiURL != tc.wantURL || a.defaultServer != tc.wantFirst {
			t.Errorf("--server %s: kubeconfigs point at %s with fallback %q, want %s with %q", tc.cfg.Server, a.apiURL, a.defaultServer, tc.wantURL, tc.wantFirst)
		}
	}
}
