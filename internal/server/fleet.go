package server

import (
	"context"
	"fmt"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/internal/controller/leader"
	"github.com/skiffdev/skiff/internal/fleet"
	fleetagent "github.com/skiffdev/skiff/internal/fleet/agent"
	"github.com/skiffdev/skiff/internal/fleet/upstream"
	"github.com/skiffdev/skiff/internal/supervise"
)

// fleetQPS is the request rate the fleet's clients may keep up.
const fleetQPS = 200

// fleetComponents are the fleet's parts of a server: on an upstream, the
// fleet API (served before the server reports ready, so that policies
// apply at once) and its controller; on every server, the agent that is
// idle until the cluster joins an upstream. Both are leader-elected among
// the servers of an HA cluster.
func (s *Server) fleetComponents(client kubernetes.Interface, restart *supervise.Backoff) ([]supervise.Component, error) {
	var list []supervise.Component
	log := s.cfg.Log
	identity := leader.Identity()
	if s.cfg.FleetUpstream {
		ext, err := apiextensions.NewForConfig(s.AdminConfig)
		if err != nil {
			return nil, err
		}
		cfg := rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-fleet")
		// One resource placed on N clusters is N Works and N status
		// reports: client-go's default 5 requests/s would pace it.
		cfg.QPS, cfg.Burst = fleetQPS, 2*fleetQPS
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		// Every upstream server takes tunnels and proxies to clusters,
		// once the API it watches Clusters through is installed; only
		// the leader runs the controller.
		s.fleetProxy = upstream.NewProxy(dyn, kube, log.With("component", "fleet-proxy"))
		list = append(list, supervise.Component{Name: "fleet-api", Step: true, Run: func(ctx context.Context) error {
			if err := fleet.InstallCRDs(ctx, ext); err != nil {
				return fmt.Errorf("install the fleet API: %w", err)
			}
			return nil
		}}, supervise.Component{Name: "fleet-proxy", Restart: restart, Run: s.fleetProxy.Run}, supervise.Component{Name: "fleet-controller", Restart: restart, Run: func(ctx context.Context) error {
			ctrl := upstream.New(upstream.Config{
				Dynamic: dyn, Kube: kube, Discovery: kube.Discovery(), Log: log.With("controller", "fleet"),
				MonitorGracePeriod: s.cfg.FleetMonitorGracePeriod,
			})
			return leader.Run(ctx, kube, "skiff-fleet", identity, log, ctrl.Run)
		}})
	}
	if !s.cfg.DisableFleetAgent {
		cfg := rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-fleet-agent")
		cfg.QPS, cfg.Burst = fleetQPS, 2*fleetQPS
		list = append(list, supervise.Component{Name: "fleet-agent", Restart: restart, Run: func(ctx context.Context) error {
			return fleetagent.Run(ctx, fleetagent.Config{Local: cfg, Log: log.With("component", "fleet-agent"),
				// Only once joined: a cluster outside any fleet keeps no
				// Lease for it.
				Elect: func(ctx context.Context, run func(context.Context) error) error {
					return leader.Run(ctx, client, "skiff-fleet-agent", identity, log, run)
				}})
		}})
	}
	return list, nil
}
