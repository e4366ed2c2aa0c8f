package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/agent"
	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/gatewayapi"
	"github.com/skiffdev/skiff/internal/progress"
	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/internal/supervise"
)

func newServerCommand() *cobra.Command {
	var (
		cfg          server.Config
		datastore    string
		disableAgent bool
		encrypt      bool
		reset        bool
		restorePath  string
		tokenFile    string
		node         agentFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API server over etcd, controllers, scheduler)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.DisableSecretsEncryption = !encrypt
			if datastore != "" {
				cfg.DatastoreEndpoints = strings.Split(datastore, ",")
			}
			cfg.Log = newLogger("skiff-server")
			if tokenFile != "" {
				token, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("%w: read --token-file: %v", component.ErrConfig, err)
				}
				cfg.JoinToken = strings.TrimSpace(string(token))
			}
			if reset && restorePath == "" {
				if err := server.ResetMembership(cmd.Context(), cfg); err != nil {
					return err
				}
				cfg.Log.Info("etcd membership reset: this server is its only member, with every object kept; start skiff server again without --cluster-reset, then join the other servers again with their DATA/etcd deleted (docs/ha.md)")
				return nil
			}
			if reset || restorePath != "" {
				if !reset {
					return fmt.Errorf("%w: --cluster-reset-restore-path needs --cluster-reset", component.ErrConfig)
				}
				status.Set("restoring the etcd snapshot " + restorePath)
				old, err := server.ClusterReset(cfg, restorePath)
				status.Set("")
				if err != nil {
					return err
				}
				cfg.Log.Info("etcd restored from the snapshot; start skiff server again without --cluster-reset", "snapshot", restorePath, "previous-data", old)
				return nil
			}
			// On a terminal, a line below the log says what the start
			// waits for; the agent's takes over once the server is ready.
			cfg.Progress = func(done, total int, waiting string) {
				if done == total {
					if disableAgent {
						status.Set("")
					}
					return
				}
				status.Set(progress.Steps("starting skiff server", done, total, waiting))
			}
			defer status.Set("")
			s, err := server.New(cfg)
			if err != nil {
				return err
			}
			var agentCfg agent.Config
			if !disableAgent {
				if agentCfg, err = node.complete(cfg.DataDir); err != nil {
					return err
				}
				// The in-process agent starts once the server is ready:
				// refuse its bad flags now.
				if err := agentCfg.Check(); err != nil {
					return fmt.Errorf("%w: %v", component.ErrConfig, err)
				}
			}
			ctx, stop := untilSignal()
			defer stop()
			if disableAgent {
				return s.Run(ctx)
			}
			return runWithAgent(ctx, s, agentCfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for the datastore, certificates, kubeconfig and join token")
	f.IntVar(&cfg.HTTPSPort, "https-listen-port", 6443, "port the API server serves HTTPS on")
	f.StringVar(&cfg.BindAddress, "bind-address", "0.0.0.0", "address the API server listens on")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "address published for the kubernetes Service (default: the host's main address)")
	f.StringVar(&datastore, "datastore-endpoint", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd in the data dir)")
	def := clusterconfig.Default()
	f.StringVar(&cfg.Cluster.ClusterCIDR, "cluster-cidr", def.ClusterCIDR, "pod network, split into a podCIDR per node")
	f.StringVar(&cfg.Cluster.ServiceCIDR, "service-cidr", def.ServiceCIDR, "range ClusterIPs are allocated from")
	f.StringVar(&cfg.Cluster.ClusterDNS, "cluster-dns", "", "ClusterIP of the kube-dns Service, written into pods' resolv.conf (default: the tenth address of --service-cidr, "+def.ClusterDNS+")")
	f.StringVar(&cfg.Cluster.ClusterDomain, "cluster-domain", def.ClusterDomain, "DNS domain of Services and pods")
	f.StringVar(&cfg.Cluster.GatewayAddressPool, "gateway-address-pool", "", "CIDR giving each Gateway an address of its own, which every node accepts as local (route the range to the nodes); default: Gateways share the nodes' addresses")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra host names or addresses for the API server's certificate")
	f.StringArrayVar(&cfg.APIServerArgs, "kube-apiserver-arg", nil, "extra kube-apiserver flag, key=value (repeatable)")
	f.StringArrayVar(&cfg.ControllerManagerArgs, "kube-controller-manager-arg", nil, "extra kube-controller-manager flag, key=value (repeatable)")
	f.StringArrayVar(&cfg.SchedulerArgs, "kube-scheduler-arg", nil, "extra kube-scheduler flag, key=value (repeatable)")
	f.BoolVar(&cfg.DisableControllers, "disable-controller-manager", false, "do not run the controller manager")
	f.BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "do not run the scheduler")
	f.BoolVar(&cfg.DisableDNS, "disable-dns", false, "do not run the cluster DNS server (kube-dns Service at --cluster-dns)")
	f.IntVar(&cfg.DNSPort, "dns-port", 10053, "port the cluster DNS server listens on, UDP and TCP, at the advertise address (the kube-dns Service's port 53 leads there)")
	f.BoolVar(&cfg.DisableDashboard, "disable-dashboard", false, "serve no web dashboard at /dashboard/ on the HTTPS port")
	f.BoolVar(&cfg.DisableMetricsServer, "disable-metrics-server", false, "do not run metrics-server (metrics.k8s.io: kubectl top, HorizontalPodAutoscaler on CPU and memory)")
	f.IntVar(&cfg.MetricsServerPort, "metrics-server-port", 10251, "port metrics-server serves metrics.k8s.io on, at the advertise address (the API server's aggregator reaches it there)")
	f.BoolVar(&cfg.FleetUpstream, "fleet-upstream", false, "serve the fleet API (fleet.skiff.dev) and place what its policies select on the clusters that join (skiff fleet join); workloads here are templates only: the controller manager's workload controllers do not run")
	f.DurationVar(&cfg.FleetMonitorGracePeriod, "fleet-cluster-monitor-grace-period", 40*time.Second, "with --fleet-upstream: how long a downstream cluster may go without a heartbeat before it is marked not Ready")
	f.BoolVar(&cfg.DisableFleetAgent, "disable-fleet-agent", false, "run no fleet agent (this cluster cannot join a fleet upstream)")
	f.BoolVar(&cfg.DisableGatewayAPI, "disable-gateway-api", false, "do not install the Gateway API CRDs ("+gatewayapi.BundleVersion+") and the GatewayClass skiff")
	f.StringVar(&cfg.Cluster.GatewayAPIChannel, "gateway-api-channel", clusterconfig.GatewayAPIStandard, "channel of the Gateway API CRDs to install: standard, or experimental (HTTPRoute retry and sessionPersistence, XBackendTrafficPolicy, …)")
	f.StringSliceVar(&cfg.DNSUpstreams, "dns-upstream", nil, "resolvers for names outside the cluster, host or host:port (repeatable; default: the name servers of /etc/resolv.conf)")
	f.BoolVar(&encrypt, "secrets-encryption", true, "encrypt Secrets at rest (secretbox keys in DATA/cred; false writes new Secrets in plain text and keeps old keys for reading)")
	f.StringVar(&cfg.AuditPolicyFile, "audit-policy-file", "", "the API server's audit policy (audit.k8s.io/v1 Policy; default: skiff's, written to DATA/audit/policy.yaml); the log is DATA/audit/audit.log")
	f.StringVar(&cfg.SnapshotSchedule, "etcd-snapshot-schedule-cron", server.DefaultSnapshotSchedule, "when to snapshot the embedded etcd into DATA/snapshots (cron's five fields)")
	f.IntVar(&cfg.SnapshotRetention, "etcd-snapshot-retention", 5, "how many scheduled snapshots to keep")
	f.BoolVar(&cfg.DisableSnapshots, "etcd-disable-snapshots", false, "take no scheduled snapshots")
	f.BoolVar(&reset, "cluster-reset", false, "with --cluster-reset-restore-path: restore the embedded etcd from a snapshot; alone, on an HA server: make it the only etcd member, keeping the data; then exit (the server must be stopped)")
	f.StringVar(&restorePath, "cluster-reset-restore-path", "", "snapshot file to restore with --cluster-reset")
	f.BoolVar(&cfg.ClusterInit, "cluster-init", false, "start the first server of a highly available cluster: its embedded etcd serves the servers that join it (ports 2379 and 2380 on the advertise address, TLS)")
	f.StringVar(&cfg.JoinURL, "server", "", "join the cluster of the server at this URL (https://HOST:6443) as another server, with --token-file")
	f.StringVar(&tokenFile, "token-file", "", "with --server: file holding the server token (DATA/token of a server of the cluster)")
	f.BoolVar(&disableAgent, "disable-agent", false, "run the control plane only, without a node agent")
	node.register(f)
	return cmd
}

// runWithAgent runs the server and, once its API server is ready and
// bootstrapped, a node agent in the same process that joins it like any
// other node (with the join token), and labels the agent's node as the
// control plane's. The agent starts while the server's later components
// (the metrics API above all, ~1.5 s) are still starting: it needs only
// the API.
func runWithAgent(ctx context.Context, s *server.Server, cfg agent.Config) error {
	var a *agent.Agent
	return supervise.Group{Log: cfg.Log, Components: []supervise.Component{
		{Name: "server", Run: s.Run, Ready: s.WaitBootstrapped, StopTimeout: 30 * time.Second},
		{Name: "agent-config", Step: true, Run: func(context.Context) error {
			token, err := os.ReadFile(s.Paths.Token)
			if err != nil {
				return err
			}
			cfg.Server, cfg.Token, cfg.CAFile, cfg.DataDir, cfg.DisableLB = s.URL, string(token), s.Paths.CACert, s.Paths.Agent, true
			a, err = agent.New(cfg)
			return err
		}},
		{Name: "agent", Run: func(ctx context.Context) error { return a.Run(ctx) }, StopTimeout: 30 * time.Second},
		{Name: "control-plane-label", Run: func(ctx context.Context) error { return s.LabelControlPlaneNode(ctx, a.NodeName()) }},
	}}.Run(ctx)
}
