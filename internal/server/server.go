// Package server composes skiff's control plane: the datastore, the API
// server, the controller manager and the scheduler, each run in-process and
// supervised, plus the built-in local-path provisioner, the cluster DNS
// server (internal/dns, published as the kube-dns Service) and the first-start
// bootstrap (namespaces come from the API server itself; skiff adds the node
// join token, its RBAC bindings and the default StorageClass).
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"k8s.io/component-base/metrics/legacyregistry"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/robfig/cron/v3"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/controller/ingresslb"
	"github.com/skiffdev/skiff/internal/controller/leader"
	"github.com/skiffdev/skiff/internal/controller/localpath"
	"github.com/skiffdev/skiff/internal/controller/meshca"
	"github.com/skiffdev/skiff/internal/controller/servicelb"
	"github.com/skiffdev/skiff/internal/dashboard"
	clusterdns "github.com/skiffdev/skiff/internal/dns"
	"github.com/skiffdev/skiff/internal/fleet/upstream"
	"github.com/skiffdev/skiff/internal/gatewayapi"
	"github.com/skiffdev/skiff/internal/gctune"
	meshapi "github.com/skiffdev/skiff/internal/mesh/api"
	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/storage"
	"github.com/skiffdev/skiff/internal/supervise"
)

// Config is what `skiff server` is told on its command line.
type Config struct {
	// DataDir holds the datastore, the PKI, the kubeconfig and the join token.
	DataDir string
	// HTTPSPort is the API server's port (default 6443).
	HTTPSPort int
	// BindAddress is the API server's listen address (default 0.0.0.0).
	BindAddress string
	// AdvertiseAddress is the address the API server publishes in the
	// kubernetes Service's endpoints (default: the host's main address).
	AdvertiseAddress string
	// DatastoreEndpoints, when set, name an external etcd cluster.
	DatastoreEndpoints []string
	// Cluster holds the settings every node shares (pod and service
	// networks, cluster DNS address and domain): defaulted and validated
	// here, published to the agents (internal/clusterconfig).
	Cluster clusterconfig.Config
	// TLSSANs are extra names or addresses for the serving certificate.
	TLSSANs []string
	// Extra flags for the upstream components, "key=value" each.
	APIServerArgs, ControllerManagerArgs, SchedulerArgs []string
	// DisableControllers and DisableScheduler run the API server alone.
	DisableControllers, DisableScheduler bool
	// DNSPort is where the cluster DNS server listens, on the advertise
	// address or the host's main address (default 10053); the kube-dns
	// Service sends port 53 there.
	DNSPort int
	// DisableDNS runs no cluster DNS server and publishes no kube-dns Service.
	DisableDNS bool
	// MetricsServerPort is where metrics-server serves metrics.k8s.io, on
	// the advertise address or the host's main address (default 10251).
	MetricsServerPort int
	// DisableMetricsServer runs no metrics-server and registers no
	// metrics.k8s.io.
	DisableMetricsServer bool
	// DisableDashboard serves no web dashboard at /dashboard/.
	DisableDashboard bool
	// DisableGatewayAPI installs neither the Gateway API CRDs nor the
	// GatewayClass "skiff".
	DisableGatewayAPI bool
	// FleetUpstream makes this cluster a fleet upstream: it serves the
	// fleet API (internal/fleet) and places what its policies select on
	// the clusters that join it. Like Karmada's control plane, it runs no
	// workloads of its own: the controller manager's workload controllers
	// are off, so a Deployment here only describes what the clusters run.
	FleetUpstream bool
	// FleetMonitorGracePeriod is how long a downstream may go without a
	// heartbeat before it is marked not Ready (default 40 s).
	FleetMonitorGracePeriod time.Duration
	// DisableFleetAgent runs no fleet agent: this cluster cannot join an
	// upstream with `skiff fleet join`.
	DisableFleetAgent bool
	// DNSUpstreams resolve the names outside the cluster domain, "host" or
	// "host:port" each (default: the name servers of /etc/resolv.conf).
	DNSUpstreams []string
	// DisableSecretsEncryption writes new Secrets in plain text; keys from
	// earlier starts are kept so that what they encrypted still reads
	// (internal/secretsencrypt).
	DisableSecretsEncryption bool
	// SnapshotSchedule is when the embedded etcd is snapshotted into
	// Paths.Snapshots, in cron's five fields (default
	// DefaultSnapshotSchedule); SnapshotRetention is how many scheduled
	// snapshots are kept (default 5). DisableSnapshots takes none.
	SnapshotSchedule  string
	SnapshotRetention int
	DisableSnapshots  bool
	// AuditPolicyFile is the API server's audit policy (upstream's
	// audit.k8s.io/v1 Policy); empty means skiff's default policy. The log
	// goes to Paths.AuditLog.
	AuditPolicyFile string
	// ClusterInit makes the embedded etcd the first member of a cluster of
	// servers (HA), which others join with JoinURL.
	ClusterInit bool
	// JoinURL, when set, is a server of the cluster this one joins (its
	// API server's https URL); JoinToken is the server token.
	JoinURL, JoinToken string

	Log *slog.Logger
	// Progress, when set, follows the start (supervise.Group.Progress).
	Progress func(done, total int, waiting string)
}

// Defaults fills the zero fields.
func (c *Config) Defaults() {
	if c.HTTPSPort == 0 {
		c.HTTPSPort = 6443
	}
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
	}
	c.Cluster.Defaults()
	if c.DNSPort == 0 {
		c.DNSPort = 10053
	}
	if c.MetricsServerPort == 0 {
		c.MetricsServerPort = 10251
	}
	if c.SnapshotSchedule == "" {
		c.SnapshotSchedule = DefaultSnapshotSchedule
	}
	if c.SnapshotRetention == 0 {
		c.SnapshotRetention = 5
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Paths are the files and folders of a server's data directory, computed
// here once; callers take them from here instead of joining names.
type Paths struct {
	// DataDir is the data directory itself.
	DataDir string
	// Kubeconfig is the admin kubeconfig (a client certificate).
	Kubeconfig string
	// Token is the node join token, K10<CA hash>::<id>.<secret>.
	Token string
	// TLSDir holds the cluster CA and every certificate the server issues;
	// CACert is the cluster CA certificate in it.
	TLSDir, CACert string
	// MeshTLSDir holds the service mesh's CA (a root of its own, which
	// signs the workloads' certificates: internal/controller/meshca).
	MeshTLSDir string
	// Etcd is the embedded datastore's directory; EtcdURL holds its client
	// URL while it runs.
	Etcd, EtcdURL string
	// EtcdTLSDir holds the etcd CA and the member's certificate of an HA
	// server; EtcdName holds its member name.
	EtcdTLSDir, EtcdName string
	// Snapshots holds the etcd snapshots (`skiff etcd-snapshot`).
	Snapshots string
	// Agent is the data dir of the server's own node agent.
	Agent string
	// EncryptionConfig is the API server's EncryptionConfiguration
	// (Secrets at rest), owned by internal/secretsencrypt.
	EncryptionConfig string
	// AuditLog is the API server's audit log (JSON lines, rotated by size
	// beside it); AuditPolicy is skiff's default policy, written there.
	AuditLog, AuditPolicy string
}

// PathsIn lays out the data directory dataDir.
func PathsIn(dataDir string) Paths {
	tls := filepath.Join(dataDir, "tls")
	return Paths{
		DataDir:    dataDir,
		Kubeconfig: filepath.Join(dataDir, "kubeconfig.yaml"),
		Token:      filepath.Join(dataDir, "token"),
		TLSDir:     tls,
		CACert:     filepath.Join(tls, "ca.crt"),
		MeshTLSDir: filepath.Join(tls, meshDir),
		Etcd:       filepath.Join(dataDir, "etcd"),
		EtcdURL:    filepath.Join(dataDir, "etcd-client-url"),
		EtcdTLSDir: filepath.Join(tls, "etcd"),
		EtcdName:   filepath.Join(dataDir, "etcd-name"),
		Snapshots:  filepath.Join(dataDir, "snapshots"),
		Agent:      filepath.Join(dataDir, "agent"),

		EncryptionConfig: filepath.Join(dataDir, encryptionConfigFile),
		AuditLog:         filepath.Join(dataDir, "audit", "audit.log"),
		AuditPolicy:      filepath.Join(dataDir, "audit", "policy.yaml"),
	}
}

// Paths lays out the server's data directory.
func (c *Config) Paths() Paths { return PathsIn(c.DataDir) }

// installTask runs install until it succeeds or ctx ends, retrying with
// back-off (the API server may be busy, or etcd electing a leader): a
// component that finishes once its work is done.
func installTask(log *slog.Logger, what string, install func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		delay := supervise.DefaultBackoff.Initial
		for {
			err := install(ctx)
			if err == nil || ctx.Err() != nil {
				return nil
			}
			log.Warn("installing "+what+"; retrying", "err", err, "after", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, supervise.DefaultBackoff.Max)
		}
	}
}

// meshDir is Paths.MeshTLSDir in Paths.TLSDir; meshCAName is the mesh CA's
// common name.
const (
	meshDir    = "mesh"
	meshCAName = "skiff-mesh-ca"
)

// Server is a running control plane.
type Server struct {
	cfg   Config
	files files
	// Paths lay out its data directory.
	Paths Paths
	// AdminConfig is a REST config with cluster-admin rights.
	AdminConfig *rest.Config
	// URL is the API server's address as clients reach it locally.
	URL string
	// Ready is closed once every component has started (the last, the
	// metrics API, once it is served).
	Ready chan struct{}
	// Bootstrapped is closed once the API server is ready and bootstrap is
	// done (the join token written): enough for a node agent to join.
	Bootstrapped chan struct{}
	// snapshotSchedule is cfg.SnapshotSchedule, parsed (nil when
	// snapshots are disabled and it does not parse).
	snapshotSchedule cron.Schedule
	// member is the embedded etcd's membership in a cluster of servers
	// (nil: a lone member, or an external datastore).
	member *storage.Member
	// usage is the dashboard's usage history and authorizer what decides
	// who reads it (nil without the dashboard or metrics-server).
	usage      *dashboard.History
	authorizer dashboard.Authorizer
	// pods is the dashboard's count of pods by phase (nil without the
	// dashboard).
	pods cache.SharedIndexInformer
	// fleetProxy, on a fleet upstream, takes the agents' tunnels and
	// serves the clusters' proxy paths.
	fleetProxy *upstream.Proxy
	// meshCA signs the service mesh's workload certificates.
	meshCA *pki.CA
}

// New prepares the data directory and credentials; Run starts everything.
func New(cfg Config) (*Server, error) {
	cfg.Defaults()
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: data dir is empty", component.ErrConfig)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = abs
	if err := cfg.Cluster.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
	}
	if cfg.AdvertiseAddress != "" {
		if err := checkAdvertiseAddress(cfg.AdvertiseAddress); err != nil {
			return nil, fmt.Errorf("%w: --advertise-address: %v", component.ErrConfig, err)
		}
	}
	schedule, err := cron.ParseStandard(cfg.SnapshotSchedule)
	if err != nil && !cfg.DisableSnapshots {
		return nil, fmt.Errorf("%w: --etcd-snapshot-schedule-cron %q: %v", component.ErrConfig, cfg.SnapshotSchedule, err)
	}
	if cfg.SnapshotRetention < 1 {
		return nil, fmt.Errorf("%w: --etcd-snapshot-retention %d: keep at least one", component.ErrConfig, cfg.SnapshotRetention)
	}
	for _, u := range cfg.DNSUpstreams {
		if err := clusterdns.CheckUpstream(u); err != nil {
			return nil, fmt.Errorf("%w: --dns-upstream: %v", component.ErrConfig, err)
		}
	}
	if err := cfg.checkHA(); err != nil {
		return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
	}
	s := &Server{cfg: cfg, Paths: cfg.Paths(), Ready: make(chan struct{}), Bootstrapped: make(chan struct{}), snapshotSchedule: schedule}
	s.URL = "https://" + net.JoinHostPort(localHost(cfg.BindAddress), strconv.Itoa(cfg.HTTPSPort))
	if cfg.JoinURL != "" {
		if err := joinCluster(context.Background(), cfg); err != nil {
			return nil, err
		}
	}
	if s.files, err = preparePKI(cfg, s.URL); err != nil {
		return nil, fmt.Errorf("prepare certificates: %w", err)
	}
	// Made by the first server, read from the server bootstrap data by
	// the others (one of sharedFiles), even by a server that runs no
	// controllers: every server's signer must be the same CA.
	if s.meshCA, err = pki.EnsureNamedCA(s.Paths.MeshTLSDir, meshCAName); err != nil {
		return nil, fmt.Errorf("prepare the mesh CA: %w", err)
	}
	if cfg.haMode() {
		if s.member, err = etcdMember(cfg); err != nil {
			return nil, fmt.Errorf("etcd member: %w", err)
		}
	}
	if s.files.encryption, err = secretsencrypt.Ensure(s.Paths.EncryptionConfig, !cfg.DisableSecretsEncryption, time.Now()); err != nil {
		return nil, fmt.Errorf("%w: secrets encryption: %v", component.ErrConfig, err)
	}
	if s.files.auditPolicy, err = prepareAudit(cfg); err != nil {
		return nil, err
	}
	s.AdminConfig, err = clientcmd.BuildConfigFromFlags("", s.Paths.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// The server's own clients (bootstrap, the add-ons it applies, its
	// controllers) write a few dozen objects at start: at client-go's
	// default of 5 requests/s with a burst of 10, bootstrap alone waited
	// 0.6 s of every start, with the node's agent waiting on it
	// (docs/perf.md, "the server's own clients, unthrottled"). They are
	// the cluster's own components, like the controller manager.
	s.AdminConfig.QPS, s.AdminConfig.Burst = componentQPS, 2*componentQPS
	return s, nil
}

// localHost is the address a process on this host dials to reach bind.
func localHost(bind string) string {
	ip := net.ParseIP(bind)
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return bind
}

// Run serves until ctx ends, then stops the components in reverse order.
func (s *Server) Run(ctx context.Context) error {
	components, err := s.components()
	if err != nil {
		return err
	}
	return supervise.Group{Log: s.cfg.Log, Components: components, Progress: s.cfg.Progress}.Run(ctx)
}

// WaitBootstrapped returns once the server's Bootstrapped is closed, or with
// ctx's error.
func (s *Server) WaitBootstrapped(ctx context.Context) error {
	return supervise.Closed(s.Bootstrapped)(ctx)
}

// components lists the control plane in start order: the datastore, the API
// server (once ready, the bootstrap), then the controllers, the scheduler and
// the cluster DNS. Stopping is the reverse: the API server outlives every
// client of it, and the datastore outlives the API server.
func (s *Server) components() ([]supervise.Component, error) {
	log := s.cfg.Log
	client, err := kubernetes.NewForConfig(s.AdminConfig)
	if err != nil {
		return nil, err
	}
	restart := &supervise.DefaultBackoff
	if len(s.cfg.DatastoreEndpoints) == 0 {
		// The embedded etcd's etcd_server_* and friends, on the API
		// server's /metrics beside everything else of the process.
		if err := storage.RegisterEtcdMetrics(legacyregistry.Registerer()); err != nil {
			return nil, fmt.Errorf("etcd metrics: %w", err)
		}
	}
	if !s.cfg.DisableDashboard {
		s.authorizer, s.pods = reviewAuthorizer{client}, newPodPhases(client)
		if !s.cfg.DisableMetricsServer {
			s.usage = dashboard.NewHistory()
		}
	}
	var store *storage.Store
	storeReady := make(chan struct{})
	list := []supervise.Component{
		{Name: "gc-tuner", Run: func(ctx context.Context) error { return gctune.Run(ctx, gctune.Config{Log: log}) }},
		{
			Name: "datastore",
			Run: func(ctx context.Context) error {
				var err error
				store, err = storage.Start(ctx, storage.Config{
					DataDir:   s.Paths.Etcd,
					Endpoints: s.cfg.DatastoreEndpoints,
					URLFile:   s.Paths.EtcdURL,
					Member:    s.member,
					Log:       log,
				})
				if err != nil {
					return err
				}
				close(storeReady)
				<-ctx.Done()
				store.Close()
				return nil
			},
			Ready: supervise.Closed(storeReady),
		},
		{
			Name: "kube-apiserver",
			Run: func(ctx context.Context) error {
				args, err := s.apiServerArgs(store.Endpoints)
				if err != nil {
					return err
				}
				return component.APIServer(ctx, args, s.apiServerHandlers())
			},
			Restart: restart,
			Ready:   func(ctx context.Context) error { return waitReady(ctx, client) },
		},
		{Name: "bootstrap", Step: true, Run: func(ctx context.Context) error {
			if err := s.bootstrap(ctx, client); err != nil {
				return fmt.Errorf("bootstrap: %w", err)
			}
			close(s.Bootstrapped)
			return nil
		}},
	}
	if s.cfg.sharesBootstrap() {
		list = append(list, supervise.Component{Name: "server-bootstrap-sync", Restart: restart, Run: func(ctx context.Context) error {
			return s.syncServerBootstrap(ctx, client)
		}})
	}
	list = append(list, supervise.Component{Name: "certificate-renewal", Restart: restart, Run: s.renewCertificates})
	if len(s.cfg.DatastoreEndpoints) == 0 && !s.cfg.DisableSnapshots {
		list = append(list, supervise.Component{Name: "etcd-snapshots", Restart: restart, Run: func(ctx context.Context) error {
			return s.runSnapshots(ctx, func() []string { return store.Endpoints })
		}})
	}
	if !s.cfg.DisableControllers {
		// Bad flags end the start (checked here without probing the
		// port); each run computes them again and probes the health port
		// then (securePort: another process may have taken it between a
		// probe and the listen, so a restart probes afresh).
		if _, err := s.controllerManagerArgs(strconv.Itoa(controllerManagerPort)); err != nil {
			return nil, err
		}
		provisioner, err := s.localPathProvisioner()
		if err != nil {
			return nil, err
		}
		lbClient, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-service-lb"))
		if err != nil {
			return nil, err
		}
		lb := servicelb.New(lbClient, log.With("controller", "service-lb"))
		ingressLBClient, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-ingress-lb"))
		if err != nil {
			return nil, err
		}
		ingressLB, err := ingresslb.New(ingressLBClient, log.With("controller", "ingress-lb"), legacyregistry.Registerer())
		if err != nil {
			return nil, err
		}
		meshCAClient, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-mesh-ca"))
		if err != nil {
			return nil, err
		}
		meshSigner, err := meshca.New(meshca.Config{
			Client:      meshCAClient,
			CA:          s.meshCA,
			TrustDomain: s.cfg.Cluster.ClusterDomain,
			Registerer:  legacyregistry.Registerer(),
			Log:         log.With("controller", "mesh-ca"),
		})
		if err != nil {
			return nil, err
		}
		// Every server runs them, one at a time (a Lease each), as the
		// controller manager's controllers.
		identity := leader.Identity()
		list = append(list,
			supervise.Component{Name: "kube-controller-manager", Restart: restart, Run: func(ctx context.Context) error {
				args, err := s.controllerManagerArgs(s.securePort("kube-controller-manager", controllerManagerPort))
				if err != nil {
					return err
				}
				return component.ControllerManager(ctx, args)
			}},
			supervise.Component{Name: "local-path-provisioner", Restart: restart, Run: provisioner.Run},
			supervise.Component{Name: "service-lb", Restart: restart, Run: func(ctx context.Context) error {
				return leader.Run(ctx, lbClient, "skiff-service-lb", identity, log, lb.Run)
			}},
			supervise.Component{Name: "ingress-lb", Restart: restart, Run: func(ctx context.Context) error {
				return leader.Run(ctx, ingressLBClient, "skiff-ingress-lb", identity, log, ingressLB.Run)
			}},
			supervise.Component{Name: "mesh-ca", Restart: restart, Run: func(ctx context.Context) error {
				return leader.Run(ctx, meshCAClient, "skiff-mesh-ca", identity, log, meshSigner.Run)
			}},
		)
	}
	if !s.cfg.DisableScheduler {
		// As the controller manager's: checked now, computed per run.
		if _, err := s.schedulerArgs(strconv.Itoa(schedulerPort)); err != nil {
			return nil, err
		}
		list = append(list, supervise.Component{Name: "kube-scheduler", Restart: restart, Run: func(ctx context.Context) error {
			args, err := s.schedulerArgs(s.securePort("kube-scheduler", schedulerPort))
			if err != nil {
				return err
			}
			return component.Scheduler(ctx, args)
		}})
	}
	if !s.cfg.DisableDNS {
		ip, err := s.cfg.dnsAddress()
		if err != nil {
			return nil, fmt.Errorf("cluster DNS address: %w", err)
		}
		dnsServer, err := clusterdns.New(clusterdns.Config{
			ListenAddr:    dnsListenAddr(ip, s.cfg.DNSPort),
			ClusterDomain: s.cfg.Cluster.ClusterDomain,
			Upstreams:     s.cfg.DNSUpstreams,
			Registerer:    legacyregistry.Registerer(),
			Log:           log,
		}, client)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
		list = append(list, supervise.Component{Name: "dns", Restart: restart, Run: func(ctx context.Context) error {
			return s.runDNS(ctx, client, dnsServer, ip)
		}})
	}
	agg, err := aggregator.NewForConfig(s.AdminConfig)
	if err != nil {
		return nil, err
	}
	if !s.cfg.DisableMetricsServer {
		ip, err := s.cfg.dnsAddress()
		if err != nil {
			return nil, fmt.Errorf("metrics-server address: %w", err)
		}
		list = append(list, supervise.Component{Name: "metrics-server", Restart: restart, Run: func(ctx context.Context) error {
			return s.runMetricsServer(ctx, client, agg, ip)
		}, Ready: func(ctx context.Context) error { return s.waitMetricsAPI(ctx, agg) }})
	} else {
		list = append(list, supervise.Component{Name: "metrics-server-withdrawal", Step: true, Run: func(ctx context.Context) error {
			if err := withdrawMetricsServer(ctx, client, agg); err != nil {
				log.Warn("withdraw metrics-server", "err", err)
			}
			return nil
		}})
	}
	if !s.cfg.DisableDashboard {
		list = append(list, supervise.Component{Name: "dashboard-rbac", Step: true, Run: func(ctx context.Context) error {
			return ensureDashboardRBAC(ctx, client)
		}}, supervise.Component{Name: "dashboard-pod-phases", Run: func(ctx context.Context) error {
			s.pods.Run(ctx.Done())
			return nil
		}})
	}
	if s.usage != nil {
		mc, err := metricsclient.NewForConfig(s.AdminConfig)
		if err != nil {
			return nil, err
		}
		list = append(list, supervise.Component{Name: "dashboard-usage", Restart: restart, Run: func(ctx context.Context) error {
			return s.usage.Sample(ctx, metricsUsage{mc}, log)
		}})
	}
	if !s.cfg.DisableGatewayAPI {
		extClient, err := apiextensions.NewForConfig(s.AdminConfig)
		if err != nil {
			return nil, err
		}
		gwClient, err := gateway.NewForConfig(s.AdminConfig)
		if err != nil {
			return nil, err
		}
		// A task beside the others, not a step before "ready": creating
		// the CRDs costs the API server some 4 s of CPU (OpenAPI for their
		// large schemas), which would double the time to ready. Their kinds
		// are served a few seconds after ready on a fresh cluster, at once
		// on a restart.
		// A task that finishes: it retries on its own (the API server may
		// be busy or etcd electing a leader) and ends once installed.
		list = append(list, supervise.Component{Name: "gateway-api", Run: installTask(log, "the Gateway API", func(ctx context.Context) error {
			if err := gatewayapi.Install(ctx, extClient, gatewayapi.Channel(cmp.Or(s.cfg.Cluster.GatewayAPIChannel, string(gatewayapi.Standard))), log); err != nil {
				return err
			}
			if err := gatewayapi.EnsureClass(ctx, gwClient); err != nil {
				return err
			}
			// Building the CRDs' schemas and OpenAPI left the API server
			// ~100 MiB of freed heap that the Go runtime would return to
			// the system only slowly; return it now, once the OpenAPI is
			// rebuilt.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				debug.FreeOSMemory()
			}
			return nil
		})})
	}
	if !s.cfg.DisableControllers {
		extClient, err := apiextensions.NewForConfig(s.AdminConfig)
		if err != nil {
			return nil, err
		}
		// The mesh's security policies (mesh.skiff.dev), which every
		// node's mesh proxy reads; a task as the Gateway API's.
		list = append(list, supervise.Component{Name: "mesh-api", Run: installTask(log, "the mesh API", func(ctx context.Context) error {
			return meshapi.InstallCRDs(ctx, extClient)
		})})
	}
	fleetComponents, err := s.fleetComponents(client, restart)
	if err != nil {
		return nil, err
	}
	list = append(list, fleetComponents...)
	list = append(list, supervise.Component{Name: "ready", Step: true, Run: func(context.Context) error {
		close(s.Ready)
		log.Info("skiff server is ready; the admin kubeconfig is at "+s.Paths.Kubeconfig, "url", s.URL)
		return nil
	}})
	return list, nil
}

// localPathProvisioner is the built-in provisioner of the local-path
// StorageClass, guarded by a Lease like the controller manager.
func (s *Server) localPathProvisioner() (*localpath.Controller, error) {
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-local-path-provisioner"))
	if err != nil {
		return nil, err
	}
	return localpath.New(localpath.Config{
		LeaseName: "skiff-local-path",
		Log:       s.cfg.Log.With("controller", "local-path"),
	}, client)
}

// waitReady polls /readyz until the API server answers 200.
func waitReady(ctx context.Context, client kubernetes.Interface) error {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		cancel()
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("not ready within 5 minutes")
}

// Hostname is the node name skiff uses by default.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}

// checkAdvertiseAddress applies the API server's rules for the address it
// publishes in the kubernetes Service's endpoints: every node must be able
// to reach it.
func checkAdvertiseAddress(a string) error {
	ip := net.ParseIP(a)
	switch {
	case ip == nil:
		return fmt.Errorf("%q is not an IP address", a)
	case ip.IsUnspecified():
		return fmt.Errorf("%s is unspecified: give an address of this host that nodes and pods reach", a)
	case ip.IsLoopback():
		return fmt.Errorf("%s is in the loopback range: pods reach the API server through it, and a loopback address is their own", a)
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast():
		return fmt.Errorf("%s is link-local or multicast: give an address of this host that nodes and pods reach", a)
	}
	return nil
}
