package component

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestTransient(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("failed to create Kubernetes client for %q: %v", "node-controller", errors.New("etcdserver: request timed out")), true},
		{fmt.Errorf("client: %w", apierrors.NewTimeoutError("slow", 1)), true},
		{fmt.Errorf("client: %w", apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, "x")), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), true},
		{errors.New(`failed to create Kubernetes client for "clusterrole-aggregation-controller": rpc error: code = Unavailable desc = error reading from server: connection reset by peer`), true},
		{errors.New("failed to create listener: failed to listen on 127.0.0.1:10257: listen tcp 127.0.0.1:10257: bind: address already in use"), true},
		{errors.New("invalid CIDR[0]: <nil> (invalid CIDR address: 10.42.0.0/99)"), false},
	} {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%q) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestControllerManagerPortInUse: a run whose secure port is still held
// (by its predecessor, after the API server restarted) fails as a
// transient error its supervisor retries, not as a configuration error
// that ends skiff.
func TestControllerManagerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	err = ControllerManager(context.Background(), []string{"--kubeconfig=" + kubeconfig, "--bind-address=127.0.0.1", "--secure-port=" + port})
	if err == nil || errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("ControllerManager with its secure port held: %v; want a transient (not ErrConfig) error naming the port in use", err)
	}
}
