package apiserver

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
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
		// Passed through: the controller manager fails to build its
		// node-ipam controller, and cannot be restarted in this process.
		{"bad cluster CIDR passed to the controller manager", []string{"--kube-controller-manager-arg", "cluster-cidr=10.42.0.0/99"}, "kube-controller-manager: invalid configuration: invalid CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := fmt.Sprint(e2eutil.FreePort(t))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			args := append([]string{"server", "--data-dir", t.TempDir(), "--https-listen-port", port, "--disable-agent"}, tc.args...)
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
