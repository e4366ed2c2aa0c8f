package component

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapifilters "k8s.io/apiserver/pkg/endpoints/filters"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// ErrLostLease says a component stopped because another process took its lease.
var ErrLostLease = errors.New("lost leader lease")

// Scheduler runs kube-scheduler with the given flags. Unlike the upstream
// binary it does not exit the process when it loses its lease: it returns,
// and its supervisor starts it again as a candidate.
func Scheduler(ctx context.Context, args []string) error {
	opts := options.NewOptions()
	if err := parse("kube-scheduler", *opts.Flags, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return invalid("kube-scheduler", []error{err})
	}
	// The informer name is registered once per process: release it so a
	// restarted run can take it again.
	name, err := cache.NewInformerName("kube-scheduler")
	if err != nil {
		return err
	}
	defer name.Release()
	opts.InformerName = name
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, sched, err := app.Setup(ctx, opts)
	if err != nil {
		return err
	}
	cc.EventBroadcaster.StartRecordingToSink(ctx.Done())
	defer cc.EventBroadcaster.Shutdown()
	if cc.SecureServing != nil {
		// /healthz, /livez, /readyz and /metrics, as upstream's Run serves
		// them (componentstatuses probes /healthz).
		var checks []healthz.HealthChecker
		if cc.LeaderElection != nil {
			checks = append(checks, cc.LeaderElection.WatchDog)
		}
		m := mux.NewPathRecorderMux("kube-scheduler")
		healthz.InstallHandler(m, checks...)
		healthz.InstallLivezHandler(m)
		healthz.InstallReadyzHandler(m, append(checks, healthz.NewShutdownHealthz(ctx.Done()))...)
		m.Handle("/metrics", legacyregistry.HandlerWithReset())
		handler := withAuth(m, cc.Authentication.Authenticator, cc.Authorization.Authorizer)
		stopServing := make(chan struct{})
		stopped, listenerStopped, err := cc.SecureServing.Serve(handler, 5*time.Second, stopServing)
		if err != nil {
			return fmt.Errorf("kube-scheduler: serve HTTPS: %w", err)
		}
		defer func() {
			close(stopServing)
			<-listenerStopped
			<-stopped
		}()
	}

	startInformers := func(ctx context.Context) {
		cc.InformerFactory.Start(ctx.Done())
		if cc.DynInformerFactory != nil {
			cc.DynInformerFactory.Start(ctx.Done())
		}
		cc.InformerFactory.WaitForCacheSync(ctx.Done())
		if cc.DynInformerFactory != nil {
			cc.DynInformerFactory.WaitForCacheSync(ctx.Done())
		}
		if err := sched.WaitForHandlersSync(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "scheduler handlers are not fully synchronized")
		}
	}
	defer func() {
		cc.InformerFactory.Shutdown()
		if cc.DynInformerFactory != nil {
			cc.DynInformerFactory.Shutdown()
		}
	}()
	if cc.LeaderElection == nil {
		startInformers(ctx)
		sched.Run(ctx)
		return ctx.Err()
	}
	le := *cc.LeaderElection
	le.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			startInformers(ctx)
			sched.Run(ctx)
		},
		OnStoppedLeading: cancel,
	}
	elector, err := leaderelection.NewLeaderElector(le)
	if err != nil {
		return err
	}
	elector.Run(ctx)
	if ctx.Err() != nil && ctx.Err() != context.Canceled {
		return ctx.Err()
	}
	return ErrLostLease
}

// withAuth is the filter chain upstream's components put in front of their
// own HTTPS endpoints: authentication, then authorization (health paths are
// always allowed), with panics recovered.
func withAuth(h http.Handler, authn authenticator.Request, authz authorizer.Authorizer) http.Handler {
	resolver := &apirequest.RequestInfoFactory{}
	h = genericapifilters.WithAuthorization(h, authz, scheme.Codecs)
	h = genericapifilters.WithAuthentication(h, authn, genericapifilters.Unauthorized(scheme.Codecs), nil, nil)
	h = genericapifilters.WithRequestInfo(h, resolver)
	h = genericapifilters.WithCacheControl(h)
	return genericfilters.WithPanicRecovery(h, resolver)
}
