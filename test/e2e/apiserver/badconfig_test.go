package apiserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestBadConfigExits: a server configuration that can never work ends
// `skiff server` at once with exit status 1 and an error naming the
// problem, instead of restarting a component forever. The second case
// reaches kube-apiserver itself (skiff's own check is bypassed by passing
// the flag through), so it exercises the set-up failure path.
func TestBadConfigExits(t *testing.T) {
	t.Parallel()
	bin := e2eutil.Binary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"loopback advertise address", []string{"--advertise-address", "127.0.0.1"}, "--advertise-address: 127.0.0.1 is in the loopback range"},
		{"loopback advertise address passed to kube-apiserver", []string{"--kube-apiserver-arg", "advertise-address=127.0.0.1"}, "kube-apiserver: invalid configuration: cannot use public IP 127.0.0.1"},
		{"bad DNS upstream", []string{"--dns-upstream", "resolver.example"}, "is not an IP address or IP:port"},
		{"bad cluster CIDR", []string{"--cluster-cidr", "10.42.0.0/99"}, "--cluster-cidr"},
		{"missing audit policy", []string{"--audit-policy-file", "/nonexistent/policy.yaml"}, "--audit-policy-file: open /nonexistent/policy.yaml: no such file or directory"},
		{"audit policy of another kind", []string{"--audit-policy-file", "testdata/shop/app/00-namespace.yaml"}, "want apiVersion audit.k8s.io/v1, kind Policy"},
		// Passed through: the controller manager fails to build its
		// node-ipam controller, and cannot be restarted in this process.
		{"bad cluster CIDR passed to the controller manager", []string{"--kube-controller-manager-arg", "cluster-cidr=10.42.0.0/99"}, "kube-controller-manager: invalid configuration: invalid CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := fmt.Sprint(e2eutil.FreePort(t))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			// A metrics-server port of its own: a server that gets that far
			// must not fail on the one of the server this test runs beside
			// (TestAgentWithWrongTokenExits) instead of on its own error.
			args := append([]string{"server", "--data-dir", t.TempDir(), "--https-listen-port", port, "--disable-agent",
				"--metrics-server-port", fmt.Sprint(e2eutil.FreePort(t))}, tc.args...)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("skiff server %v: %v (want exit status 1 within 90 s)\n%s", tc.args, err, tail(string(out), 20))
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("skiff server %v: output lacks %q:\n%s", tc.args, tc.want, tail(string(out), 20))
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestAgentWithWrongTokenExits: an agent whose join token has the cluster's
// CA hash but a secret the server does not know, or one that has expired,
// is refused, and ends with exit status 1 and a message saying so, after
// giving a server that may still be bootstrapping a minute; it never
// starts containerd or the kubelet.
func TestAgentWithWrongTokenExits(t *testing.T) {
	t.Parallel()
	s := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	good, err := os.ReadFile(filepath.Join(s.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	caHash, _, ok := strings.Cut(strings.TrimSpace(string(good)), "::")
	if !ok {
		t.Fatalf("token %q has no CA hash", good)
	}
	expired := strings.TrimSpace(skiff(t, "token", "create", "--ttl", "1s", "--data-dir", s.DataDir))
	time.Sleep(2 * time.Second)
	for name, token := range map[string]string{"wrong": caHash + "::abcdef.0123456789abcdef", "expired": expired} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			start := time.Now()
			// Each agent's API server load balancer on a port of its own:
			// they run side by side in one network namespace.
			out, err := exec.CommandContext(ctx, e2eutil.Binary(t), "agent", "--server", s.URL, "--token-file", tokenFile,
				"--data-dir", t.TempDir(), "--node-name", name+"-token", "--lb-server-port", strconv.Itoa(e2eutil.FreePort(t))).CombinedOutput()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("skiff agent with a %s token: %v after %s (want exit status 1)\n%s", name, err, time.Since(start).Round(time.Second), tail(string(out), 20))
			}
			for _, want := range []string{"the server refuses this node's join token", "it has expired, was deleted", "skiff token create makes a new one"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, tail(string(out), 20))
				}
			}
			if strings.Contains(string(out), "component=containerd") || strings.Contains(string(out), "component=kubelet") {
				t.Errorf("containerd or the kubelet started with a refused token:\n%s", tail(string(out), 20))
			}
		})
	}
}
