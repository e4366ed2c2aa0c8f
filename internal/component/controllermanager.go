package component

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// ControllerManager runs kube-controller-manager with the given flags. It
// returns when ctx ends or the leader lease is lost; the feature gate
// ControllerManagerReleaseLeaderElectionLockOnExit must be on (skiff sets it)
// so that losing the lease returns instead of exiting the process.
func ControllerManager(ctx context.Context, args []string) error {
	s, err := options.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	sets := s.Flags(app.KnownControllers(), app.ControllersDisabledByDefault(), app.ControllerAliases())
	s.ParsedFlags = &sets
	if err := parse("kube-controller-manager", sets, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return invalid("kube-controller-manager", []error{err})
	}
	c, err := s.Config(ctx, app.KnownControllers(), app.ControllersDisabledByDefault(), app.ControllerAliases())
	if err != nil {
		if transient(err) {
			// A restarted run whose predecessor's secure port is still
			// closing, or an API server not answering yet: the
			// supervisor's next run may succeed; a configuration error
			// would end skiff.
			return fmt.Errorf("kube-controller-manager: %w", err)
		}
		return invalid("kube-controller-manager", []error{err})
	}
	// A restarted run registers its configz endpoint again.
	configz.Delete(app.ConfigzName)
	err = app.Run(ctx, c.Complete())
	if err != nil && ctx.Err() == nil && !informerNameFree("kube-controller-manager") {
		// The run failed before its informers started and left its
		// informer name registered: upstream's process exits there and
		// its supervisor starts a new one, so nothing releases the name,
		// and client-go offers no release without the run's handle.
		if !transient(err) {
			// A controller refused its configuration (a bad CIDR, say):
			// no run can succeed; end skiff with the cause.
			return invalid("kube-controller-manager", []error{err})
		}
		// The API server or etcd failed it (etcd electing a leader while
		// controllers are built, say). The registry only guards against
		// duplicate informer metrics: clear it so that the restart can
		// register the name again, rather than end skiff over a
		// transient failure.
		cache.ResetInformerNamesForTesting()
	}
	return err
}

// transient tells whether err came from the API server, etcd behind it or
// the network, which a later run may not meet: an answer with a Status, a
// timeout, a refused or reset connection, or one of kube-controller-
// manager's errors that only a request can cause (it wraps many with %v,
// so their text is all there is to go by).
func transient(err error) bool {
	var status apierrors.APIStatus
	var netErr net.Error
	if errors.As(err, &status) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	msg := err.Error()
	for _, s := range transientMessages {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

var transientMessages = []string{
	"failed to create Kubernetes client", // a service account token request
	"failed to wait for apiserver",
	"etcdserver:",
	"rpc error: code = Unavailable",
	"connection reset by peer",
	"connection refused",
	"i/o timeout",
	// A restarted run whose predecessor's secure port is still closing
	// (the port was free at start, or skiff would have moved it).
	"address already in use",
}

// informerNameFree reports whether a run could register informer name n.
func informerNameFree(n string) bool {
	name, err := cache.NewInformerName(n)
	if err != nil {
		return false
	}
	name.Release()
	return true
}
