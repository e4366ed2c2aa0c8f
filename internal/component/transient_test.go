package component

import (
	"context"
	"errors"
	"fmt"
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
