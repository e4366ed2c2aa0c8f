// Package server composes skiff's control plane: the datastore, the API
// server, the controller manager and the scheduler, each run in-process and
// supervised, plus the built-in local-path provisioner, the cluster DNS
// server (internal/dns, published as the kube-dns Service) and the first-start
// bootstrap (namespaces come from the API server itself; skiff adds the node
// join token, its RBAC bindings and the default StorageClass).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/controller/localpath"
	"github.com/skiffdev/skiff/internal/controller/servicelb"
	clusterdns "github.com/skiffdev/skiff/internal/dns"
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
	// ClusterCIDR is the pod network, split into one podCIDR per node.
	ClusterCIDR string
	// ServiceCIDR is where ClusterIPs are allocated.
	ServiceCIDR string
	// TLSSANs are extra names or addresses for the serving certificate.
	TLSSANs []string
	// Extra flags for the upstream components, "key=value" each.
	APIServerArgs, ControllerManagerArgs, SchedulerArgs []string
	// DisableControllers and DisableScheduler run the API server alone.
	DisableControllers, DisableScheduler bool
	// ClusterDNS is the kube-dns Service's ClusterIP, the name server the
	// kubelets give pods (default 10.43.0.10, inside ServiceCIDR).
	ClusterDNS string
	// DNSPort is where the cluster DNS server listens, on the advertise
	// address or the host's main address (default 10053); the kube-dns
	// Service sends port 53 there.
	DNSPort int
	// DisableDNS runs no cluster DNS server and publishes no kube-dns Service.
	DisableDNS bool
	// DNSUpstreams resolve the names outside the cluster domain, "host" or
	// "host:port" each (default: the name servers of /etc/resolv.conf).
	DNSUpstreams []string

	Log *slog.Logger
}

// Defaults fills the zero fields.
func (c *Config) Defaults() {
	if c.HTTPSPort == 0 {
		c.HTTPSPort = 6443
	}
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.42.0.0/16"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.43.0.0/16"
	}
	if c.ClusterDNS == "" {
		c.ClusterDNS = "10.43.0.10"
	}
	if c.DNSPort == 0 {
		c.DNSPort = 10053
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Paths of the files a server writes into its data directory.
func KubeconfigPath(dataDir string) string { return filepath.Join(dataDir, "kubeconfig.yaml") }
func TokenPath(dataDir string) string      { return filepath.Join(dataDir, "token") }
func TLSDir(dataDir string) string         { return filepath.Join(dataDir, "tls") }

// Server is a running control plane.
type Server struct {
	cfg   Config
	files files
	// AdminConfig is a REST config with cluster-admin rights.
	AdminConfig *rest.Config
	// URL is the API server's address as clients reach it locally.
	URL string
	// Ready is closed once the API server is ready and bootstrap is done.
	Ready chan struct{}
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
	if !cfg.DisableDNS && net.ParseIP(cfg.ClusterDNS) == nil {
		return nil, fmt.Errorf("%w: cluster DNS address %q is not an IP address", component.ErrConfig, cfg.ClusterDNS)
	}
	for _, c := range []struct{ flag, cidr string }{{"--cluster-cidr", cfg.ClusterCIDR}, {"--service-cidr", cfg.ServiceCIDR}} {
		if _, _, err := net.ParseCIDR(c.cidr); err != nil {
			return nil, fmt.Errorf("%w: %s %q is not a CIDR such as 10.42.0.0/16", component.ErrConfig, c.flag, c.cidr)
		}
	}
	if cfg.AdvertiseAddress != "" {
		if err := checkAdvertiseAddress(cfg.AdvertiseAddress); err != nil {
			return nil, fmt.Errorf("%w: --advertise-address: %v", component.ErrConfig, err)
		}
	}
	for _, u := range cfg.DNSUpstreams {
		if err := clusterdns.CheckUpstream(u); err != nil {
			return nil, fmt.Errorf("%w: --dns-upstream: %v", component.ErrConfig, err)
		}
	}
	s := &Server{cfg: cfg, Ready: make(chan struct{})}
	s.URL = "https://" + net.JoinHostPort(localHost(cfg.BindAddress), strconv.Itoa(cfg.HTTPSPort))
	if s.files, err = preparePKI(cfg, s.URL); err != nil {
		return nil, fmt.Errorf("prepare certificates: %w", err)
	}
	s.AdminConfig, err = clientcmd.BuildConfigFromFlags("", KubeconfigPath(cfg.DataDir))
	if err != nil {
		return nil, err
	}
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
	log := s.cfg.Log
	store, err := storage.Start(ctx, storage.Config{
		DataDir:   filepath.Join(s.cfg.DataDir, "etcd"),
		Endpoints: s.cfg.DatastoreEndpoints,
		Log:       log,
	})
	if err != nil {
		return err
	}
	defer store.Close()

	apiArgs, err := s.apiServerArgs(store.Endpoints)
	if err != nil {
		return err
	}
	// The API server outlives the controllers: it stops only after them.
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	errc := make(chan error, 6) // API server, controller manager, scheduler, local-path provisioner, service LB, DNS
	var apiDone sync.WaitGroup
	apiDone.Add(1)
	go func() {
		defer apiDone.Done()
		errc <- supervise.Run(apiCtx, log, "kube-apiserver", supervise.DefaultBackoff, func(ctx context.Context) error {
			return component.APIServer(ctx, apiArgs)
		})
	}()
	defer func() {
		stopAPI()
		waitBounded(&apiDone, 10*time.Second)
	}()

	client, err := kubernetes.NewForConfig(s.AdminConfig)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, client, errc); err != nil {
		return err
	}
	if err := s.bootstrap(ctx, client); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}

	var wg sync.WaitGroup
	if !s.cfg.DisableControllers {
		args, err := s.controllerManagerArgs()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- supervise.Run(ctx, log, "kube-controller-manager", supervise.DefaultBackoff, func(ctx context.Context) error {
				return component.ControllerManager(ctx, args)
			})
		}()
		provisioner, err := s.localPathProvisioner()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- supervise.Run(ctx, log, "local-path-provisioner", supervise.DefaultBackoff, provisioner.Run)
		}()
		lbClient, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(s.AdminConfig), "skiff-service-lb"))
		if err != nil {
			return err
		}
		lb := servicelb.New(lbClient, log.With("controller", "service-lb"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- supervise.Run(ctx, log, "service-lb", supervise.DefaultBackoff, lb.Run)
		}()
	}
	if !s.cfg.DisableScheduler {
		args, err := s.schedulerArgs()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- supervise.Run(ctx, log, "kube-scheduler", supervise.DefaultBackoff, func(ctx context.Context) error {
				return component.Scheduler(ctx, args)
			})
		}()
	}
	if !s.cfg.DisableDNS {
		ip, err := s.cfg.dnsAddress()
		if err != nil {
			return fmt.Errorf("cluster DNS address: %w", err)
		}
		dnsServer, err := clusterdns.New(clusterdns.Config{ListenAddr: dnsListenAddr(ip, s.cfg.DNSPort), Upstreams: s.cfg.DNSUpstreams, Log: log}, client)
		if err != nil {
			return fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- supervise.Run(ctx, log, "dns", supervise.DefaultBackoff, func(ctx context.Context) error {
				return s.runDNS(ctx, client, dnsServer, ip)
			})
		}()
	}
	close(s.Ready)
	log.Info("skiff server is ready; the admin kubeconfig is at "+KubeconfigPath(s.cfg.DataDir), "url", s.URL)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	waitBounded(&wg, 5*time.Second)
	return runErr
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

func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// waitReady polls /readyz until the API server answers 200.
func waitReady(ctx context.Context, client kubernetes.Interface, errc <-chan error) error {
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
		case err := <-errc:
			if err == nil {
				err = errors.New("kube-apiserver stopped before it was ready")
			}
			return err // component.APIServer names kube-apiserver
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("kube-apiserver was not ready within 5 minutes")
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
