package component

import (
	"context"

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
		return invalid("kube-controller-manager", []error{err})
	}
	// A restarted run registers its configz endpoint again.
	configz.Delete(app.ConfigzName)
	err = app.Run(ctx, c.Complete())
	if err != nil && ctx.Err() == nil && !informerNameFree("kube-controller-manager") {
		// The run failed before its informers started (building a
		// controller while etcd elects a new leader, say) and left its
		// informer name registered: upstream's process exits there and
		// its supervisor starts a new one, so nothing releases the name,
		// and client-go offers no release without the run's handle. The
		// registry only guards against duplicate informer metrics; clear
		// it so that the restart can register the name again, rather than
		// end skiff over a transient failure.
		cache.ResetInformerNamesForTesting()
	}
	return err
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
