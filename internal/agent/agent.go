// Package agent is skiff's node agent: it joins a node to the cluster and
// runs its pods. It supervises a private containerd, imports skiff's images,
// and runs the upstream kubelet in-process against it (docs/adr/0002).
//
// It owns the node's runtime setup (containerd config, CNI template, images,
// join credentials); pod lifecycle, probes, volumes, status and streaming are
// the kubelet's own.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"
	"k8s.io/utils/ptr"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/skiffdev/skiff/internal/agent/apilb"
	"github.com/skiffdev/skiff/internal/agent/netpol"
	"github.com/skiffdev/skiff/internal/agent/podnet"
	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/controller/ingresslb"
	"github.com/skiffdev/skiff/internal/controller/localpath"
	"github.com/skiffdev/skiff/internal/gctune"
	"github.com/skiffdev/skiff/internal/ingress"
	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/kubeconfig"
	"github.com/skiffdev/skiff/internal/mesh"
	"github.com/skiffdev/skiff/internal/supervise"
)

// Config is what `skiff agent` is told on its command line.
type Config struct {
	// Server is the API server's URL.
	Server string
	// Token is the join token (the contents of the server's DATA/token).
	Token string
	// CAFile, if set, is the cluster CA; otherwise it is discovered from the
	// server and checked against the token's hash.
	CAFile string
	// DataDir holds containerd, the kubelet's state and the node's credentials.
	DataDir string
	// NodeName defaults to the host name.
	NodeName string
	// NodeIP is the node's InternalIP (default: the host's main address).
	NodeIP string
	// KubeletPort is the kubelet's HTTPS port (default 10250).
	KubeletPort int
	// ContainerRuntimeEndpoint, if set, is an existing CRI runtime to use
	// instead of the agent's own containerd.
	ContainerRuntimeEndpoint string
	// ImagesDir holds OCI image tarballs imported into the runtime at start.
	ImagesDir string
	// CNIBinDir holds the CNI plugins (Debian: /usr/lib/cni).
	CNIBinDir string
	// KubeletArgs are extra kubelet flags, "key=value" each.
	KubeletArgs []string
	// Labels are registered with the node.
	Labels map[string]string
	// PodNetwork is how nodes reach each other's pods: "host-gw" (default;
	// direct routes, nodes share a link) or "vxlan" (an overlay).
	PodNetwork string
	// DisableProxy turns kube-proxy off; ProxyArgs are extra kube-proxy flags.
	DisableProxy bool
	ProxyArgs    []string
	// DisableNetworkPolicy turns NetworkPolicy enforcement (internal/agent/
	// netpol) off on this node.
	DisableNetworkPolicy bool
	// IngressHTTPPort and IngressHTTPSPort are where the node's Ingress
	// proxy (internal/ingress) listens, on every address (default 80, 443);
	// DisableIngress turns it off; IngressAccessLog logs every request.
	IngressHTTPPort, IngressHTTPSPort int
	DisableIngress, IngressAccessLog  bool
	// DisableMesh turns the node's mesh proxy (internal/mesh) off: pods
	// labelled for the mesh then talk directly, without mTLS.
	DisableMesh bool
	// LBServerPort is the port on 127.0.0.1 of the node's load balancer
	// over the API servers (internal/agent/apilb; default 6444), which
	// every kubeconfig of the node points at. DisableLB turns it off: the
	// node talks to Server alone (the node of `skiff server`, whose API
	// server is in the same process).
	LBServerPort int
	DisableLB    bool

	Log *slog.Logger
	// Progress, when set, follows the start: joining, images, the kubelet
	// registering the node (supervise.Group.Progress).
	Progress func(done, total int, waiting string)
}

// clusterConfigFile, in the data dir, keeps the cluster configuration last
// read from the server.
const clusterConfigFile = "cluster-config.json"

// refusedJoinAttempts is how many times, a second apart, the cluster
// configuration is asked for with refused credentials before the agent
// stops with a configuration error.
const refusedJoinAttempts = 60

// Agent is a node agent.
type Agent struct {
	cfg   Config
	token jointoken.Token
	// apiURL is the API server URL of the node's kubeconfigs: the load
	// balancer's, or Server without one.
	apiURL string
	// defaultServer is Server's host:port, the load balancer's fallback.
	defaultServer string
	// lb is the load balancer, once it listens (nil without one).
	lb *apilb.LB

	// Set by the start-up steps of Run, read by the components after them.
	caFile, bootstrapKubeconfig string
	// cluster is what the server publishes for every node.
	cluster clusterconfig.Config
	// endpoint is the CRI runtime's socket.
	endpoint string
	// nodeKubeconfig and nodeClient act as the node, once the kubelet has
	// its client certificate.
	nodeKubeconfig string
	nodeClient     kubernetes.Interface
	// ingress is the node's Ingress proxy, made at its first run and run
	// again by its restarts (its metrics are registered once).
	ingress *ingress.Controller
	// ingressNodes is the current run's Node lister (corelisters.NodeLister).
	ingressNodes atomic.Value
	// ingressReady is ingress once made, for the mesh proxy's routes
	// (read from its goroutines).
	ingressReady atomic.Pointer[ingress.Controller]
	// mesh is the node's mesh proxy, made at its first run (its metrics
	// count on across restarts).
	mesh *mesh.Proxy
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" {
		return nil, fmt.Errorf("%w: --server is required", component.ErrConfig)
	}
	tok, err := jointoken.Parse(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: data dir is empty", component.ErrConfig)
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		// Node names are lower case; the kubelet lowercases host names too.
		host, _ := os.Hostname()
		cfg.NodeName = strings.ToLower(host)
	}
	if cfg.KubeletPort == 0 {
		cfg.KubeletPort = 10250
	}
	if cfg.IngressHTTPPort == 0 {
		cfg.IngressHTTPPort = 80
	}
	if cfg.IngressHTTPSPort == 0 {
		cfg.IngressHTTPSPort = 443
	}
	if err := podnet.CheckBackend(cfg.PodNetwork); err != nil {
		return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
	}
	if cfg.PodNetwork == "" {
		cfg.PodNetwork = podnet.BackendHostGW
	}
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
	}
	if cfg.CNIBinDir == "" {
		cfg.CNIBinDir = "/usr/lib/cni"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Agent{cfg: cfg, token: tok, apiURL: cfg.Server}
	if !cfg.DisableLB {
		if err := a.configureLB(); err != nil {
			return nil, fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
	}
	return a, nil
}

// CheckOptions are the host checks this node needs.
func (cfg *Config) CheckOptions() CheckOptions {
	o := CheckOptions{CNIBinDir: cfg.CNIBinDir, PodNetwork: cfg.PodNetwork, KubeletPort: cfg.KubeletPort}
	if !cfg.DisableIngress {
		o.IngressPorts = []int{cfg.IngressHTTPPort, cfg.IngressHTTPSPort}
	}
	return o
}

// checkHost refuses to start on a host that lacks what the node cannot run
// without, naming the fix, and warns of what it can do without.
func (a *Agent) checkHost(h Host) error {
	var fatal []string
	for _, f := range CheckHost(h, a.cfg.CheckOptions()) {
		switch {
		case f.OK:
		case f.Fatal:
			fatal = append(fatal, f.Problem+" (fix: "+f.Fix+")")
		default:
			a.cfg.Log.Warn("host check: "+f.Problem, "fix", f.Fix)
		}
	}
	if len(fatal) > 0 {
		return fmt.Errorf("%w: this host cannot run a node (skiff check-config lists every check): %s", component.ErrConfig, strings.Join(fatal, "; "))
	}
	return nil
}

// KubeletCertDir is where the kubelet of an agent with this data dir keeps
// its certificates (which it renews itself).
func KubeletCertDir(dataDir string) string { return filepath.Join(dataDir, "kubelet", "pki") }

// NodeName is the name the node registers with.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Check refuses, before anything starts, the settings the node could never
// run with.
func (cfg *Config) Check() error {
	if cfg.NodeIP != "" && net.ParseIP(cfg.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q is not an IP address", cfg.NodeIP)
	}
	if errs := validation.IsDNS1123Subdomain(cfg.NodeName); cfg.NodeName != "" && len(errs) > 0 {
		return fmt.Errorf("--node-name %q: %s", cfg.NodeName, strings.Join(errs, "; "))
	}
	for k, v := range cfg.Labels {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			return fmt.Errorf("--node-label %s=%s: %s", k, v, strings.Join(errs, "; "))
		}
	}
	for _, args := range []struct {
		flag string
		args []string
	}{{"--kubelet-arg", cfg.KubeletArgs}, {"--kube-proxy-arg", cfg.ProxyArgs}} {
		for _, a := range args.args {
			if _, _, err := component.SplitArg(a); err != nil {
				return fmt.Errorf("%s %v", args.flag, err)
			}
		}
	}
	return nil
}

// Run joins the node and runs it until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	return supervise.Group{Log: a.cfg.Log, Components: a.components(), Progress: a.cfg.Progress}.Run(ctx)
}

// components lists the node in start order: the load balancer over the
// API servers, join (the cluster CA and its settings), the runtime and its
// images, the kubelet, then what runs with the node's own credentials once
// the kubelet has them.
func (a *Agent) components() []supervise.Component {
	cfg, log := a.cfg, a.cfg.Log
	restart := &supervise.DefaultBackoff
	// (A server's own agent shares the server's tuner: gctune runs once
	// per process.)
	list := []supervise.Component{{Name: "gc-tuner", Run: func(ctx context.Context) error { return gctune.Run(ctx, gctune.Config{Log: log}) }}}
	if !cfg.DisableLB {
		list = append(list, a.lbComponent())
	}
	list = append(list,
		supervise.Component{Name: "check-config", Step: true, Run: func(context.Context) error { return a.checkHost(RealHost()) }},
		supervise.Component{Name: "join", Step: true, Run: a.join},
		supervise.Component{Name: "cluster-config", Step: true, Run: a.fetchClusterConfig},
	)
	a.endpoint = cfg.ContainerRuntimeEndpoint
	if a.endpoint == "" {
		ctrd := &containerd{
			dir:        filepath.Join(cfg.DataDir, "containerd"),
			cniConfDir: filepath.Join(cfg.DataDir, "cni", "net.d"),
			cniBinDir:  cfg.CNIBinDir,
			ipamDir:    filepath.Join(cfg.DataDir, "cni", "ipam"),
			podNetwork: cfg.PodNetwork,
			log:        log,
		}
		a.endpoint = ctrd.Endpoint()
		mirrorReady, ctrdReady := make(chan struct{}), make(chan struct{})
		var tars []string
		list = append(list,
			supervise.Component{Name: "image-files", Step: true, Run: func(context.Context) error {
				var err error
				tars, err = imageTarballs(cfg.ImagesDir, filepath.Join(cfg.DataDir, "builtin-images"))
				return err
			}},
			supervise.Component{
				Name: "image-mirror",
				Run: func(ctx context.Context) error {
					mirror, err := startMirror(ctrd.dir, log)
					if err != nil {
						close(mirrorReady)
						return err
					}
					ctrd.mirror = mirror.URL()
					close(mirrorReady)
					return mirror.Run(ctx)
				},
				Ready: supervise.Closed(mirrorReady),
			},
			supervise.Component{
				Name:  "containerd",
				Run:   func(ctx context.Context) error { return ctrd.Run(ctx, ctrdReady) },
				Ready: supervise.Closed(ctrdReady),
			},
			supervise.Component{Name: "images", Step: true, Run: func(ctx context.Context) error {
				return importImages(ctx, ctrd.socket(), tars, log)
			}},
		)
	}
	list = append(list,
		supervise.Component{Name: "node", Step: true, Run: func(context.Context) error {
			// Teardown reads the node name to find the node's cgroups.
			if err := os.WriteFile(filepath.Join(cfg.DataDir, nodeNameFile), []byte(cfg.NodeName), 0o600); err != nil {
				return err
			}
			if err := ensureCgroupRoot(a.cgroupRoot()); err != nil {
				return fmt.Errorf("create cgroup %s: %w", a.cgroupRoot(), err)
			}
			removeLogLinks(legacyLogDir, a.podLogsDir(), false)
			return nil
		}},
		supervise.Component{Name: "kubelet-certificate", Step: true, Run: a.bootstrapKubelet},
		supervise.Component{Name: "kubelet", Restart: restart, Run: func(ctx context.Context) error {
			return component.Kubelet(ctx, a.configureKubelet, cfg.KubeletArgs)
		}},
		supervise.Component{Name: "node-credentials", Step: true, Run: a.waitNodeClient},
	)
	if !cfg.DisableLB {
		list = append(list, supervise.Component{Name: "apiserver-endpoints", Restart: restart, Run: a.watchAPIServers})
	}
	if !cfg.DisableProxy {
		list = append(list, supervise.Component{Name: "kube-proxy", Restart: restart, Run: a.runProxy})
	}
	list = append(list, supervise.Component{Name: "pod-network", Restart: restart, Run: func(ctx context.Context) error {
		pn, err := podnet.New(podnet.Config{NodeName: cfg.NodeName, ClusterCIDR: a.cluster.ClusterCIDR, Backend: cfg.PodNetwork, Client: a.nodeClient, Log: log})
		if err != nil {
			return fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
		return pn.Run(ctx)
	}})
	if !cfg.DisableNetworkPolicy {
		list = append(list, supervise.Component{Name: "network-policy", Restart: restart, Run: func(ctx context.Context) error {
			c, err := netpol.New(netpol.Config{NodeName: cfg.NodeName, Client: a.nodeClient, Log: log})
			if err != nil {
				return err
			}
			return c.Run(ctx)
		}})
	}
	if !cfg.DisableIngress {
		list = append(list, supervise.Component{Name: "ingress", Restart: restart, Run: a.runIngress})
	}
	if !cfg.DisableMesh {
		list = append(list, supervise.Component{Name: "mesh", Restart: restart, Run: a.runMesh})
	}
	return append(list, supervise.Component{Name: "node-annotations", Run: a.annotateNode})
}

// runIngress serves the cluster's Ingresses and Gateways on this node's
// ports, with the node's credentials (bound to the skiff:ingress
// ClusterRole). Every node publishes the same status: the EXTERNAL-IPs of
// the skiff-ingress Service (the Ready nodes that run a proxy), or the
// InternalIPs of the Ready nodes until it has some.
func (a *Agent) runIngress(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(a.nodeClient, 0)
	nodes := factory.Core().V1().Nodes().Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	a.ingressNodes.Store(nodes)
	if a.ingress == nil {
		rc, err := a.nodeConfig()
		if err != nil {
			return err
		}
		gwClient, err := gateway.NewForConfig(rc)
		if err != nil {
			return err
		}
		var pool netip.Prefix
		if a.cluster.GatewayAddressPool != "" {
			if pool, err = netip.ParsePrefix(a.cluster.GatewayAddressPool); err != nil {
				return fmt.Errorf("%w: gateway address pool: %v", component.ErrConfig, err)
			}
		}
		c, err := ingress.New(ingress.Config{
			NodeName:      a.cfg.NodeName,
			Client:        a.nodeClient,
			GatewayClient: gwClient,
			GatewayPool:   pool,
			// The proxies claim what the CRDs the server installed can express.
			ExperimentalGatewayAPI: a.cluster.GatewayAPIChannel == clusterconfig.GatewayAPIExperimental,
			HTTPAddr:               ":" + strconv.Itoa(a.cfg.IngressHTTPPort),
			HTTPSAddr:              ":" + strconv.Itoa(a.cfg.IngressHTTPSPort),
			Addresses: func() []string {
				nodes, _ := a.ingressNodes.Load().(corelisters.NodeLister)
				return readyNodeIPs(nodes)
			},
			// The nodes whose proxy serves, as the service load balancer
			// publishes them (internal/controller/ingresslb).
			PublishService: types.NamespacedName{Namespace: ingresslb.Namespace, Name: ingresslb.ServiceName},
			WriteStatus:    true,
			AccessLog:      a.cfg.IngressAccessLog,
			Registerer:     legacyregistry.Registerer(),
			Log:            a.cfg.Log.With("component", "ingress"),
		})
		if err != nil {
			return fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
		a.ingress = c
		a.ingressReady.Store(c)
	}
	if pool := a.ingress.GatewayPool(); pool.IsValid() {
		// The node takes the whole pool as its own, so that traffic routed
		// to a Gateway's address reaches this proxy.
		if err := acceptLocally(pool); err != nil {
			return fmt.Errorf("gateway address pool %s: %w", pool, err)
		}
	}
	return a.ingress.Run(ctx)
}

// nodeConfig is the REST configuration of the node's credentials, for the
// clients the node's components need beside nodeClient.
func (a *Agent) nodeConfig() (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", a.nodeKubeconfig)
	if err != nil {
		return nil, err
	}
	return rest.AddUserAgent(rc, "skiff-agent"), nil
}

// runMesh runs the node's mesh proxy with the node's credentials (bound to
// the skiff:mesh ClusterRole).
func (a *Agent) runMesh(ctx context.Context) error {
	if a.mesh == nil {
		rc, err := a.nodeConfig()
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return err
		}
		cfg := mesh.Config{
			NodeName:    a.cfg.NodeName,
			Client:      a.nodeClient,
			Dynamic:     dyn,
			TrustDomain: a.cluster.ClusterDomain,
			Log:         a.cfg.Log.With("component", "mesh"),
		}
		if !a.cfg.DisableIngress {
			// The ingress proxy compiles HTTPRoutes attached to
			// Services (GAMMA); the mesh applies them.
			cfg.Routes = meshRoutes{a}
		}
		p, err := mesh.New(cfg)
		if err != nil {
			return fmt.Errorf("%w: %v", component.ErrConfig, err)
		}
		a.mesh = p
	}
	return a.mesh.Run(ctx)
}

// meshRoutes are the node's ingress proxy's mesh routes, once it is made.
type meshRoutes struct{ a *Agent }

func (m meshRoutes) HasMeshRoutes(svc types.NamespacedName, port int32) bool {
	c := m.a.ingressReady.Load()
	return c != nil && c.HasMeshRoutes(svc, port)
}

func (m meshRoutes) MeshHandler(svc types.NamespacedName, port int32, clientNamespace string, h1, h2c http.RoundTripper) http.Handler {
	c := m.a.ingressReady.Load()
	if c == nil {
		return nil
	}
	return c.MeshHandler(svc, port, clientNamespace, h1, h2c)
}

// acceptLocally adds a "local" route for pool to the local routing table:
// the kernel delivers packets to any of its addresses to local sockets,
// with no address assigned to an interface.
func acceptLocally(pool netip.Prefix) error {
	r, err := localRoute(pool)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(r)
}

// forgetLocally removes acceptLocally's route (skiff agent teardown).
func forgetLocally(pool netip.Prefix) error {
	r, err := localRoute(pool)
	if err != nil {
		return err
	}
	return netlink.RouteDel(r)
}

func localRoute(pool netip.Prefix) (*netlink.Route, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, err
	}
	return &netlink.Route{
		Dst:  &net.IPNet{IP: pool.Masked().Addr().AsSlice(), Mask: net.CIDRMask(pool.Bits(), pool.Addr().BitLen())},
		Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL,
		Scope: netlink.SCOPE_HOST, LinkIndex: lo.Attrs().Index,
	}, nil
}

// readyNodeIPs lists the InternalIPs of the Ready nodes, sorted.
func readyNodeIPs(nodes corelisters.NodeLister) []string {
	if nodes == nil {
		return nil
	}
	list, err := nodes.List(labels.Everything())
	if err != nil {
		return nil
	}
	var ips []string
	for _, n := range list {
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		for _, addr := range n.Status.Addresses {
			if ready && addr.Type == corev1.NodeInternalIP {
				ips = append(ips, addr.Address)
			}
		}
	}
	slices.Sort(ips)
	return ips
}

// join finds the cluster CA (discovered through the join token's hash when
// no CA file was given), writes the kubelet's bootstrap kubeconfig and
// points the kubelet's kubeconfig of an earlier start at apiURL.
func (a *Agent) join(context.Context) error {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return err
	}
	caFile, err := a.ensureCA()
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	bootstrapKubeconfig := filepath.Join(a.cfg.DataDir, "bootstrap.kubeconfig")
	if err := kubeconfig.Write(bootstrapKubeconfig, a.apiURL, caPEM, "kubelet-bootstrap",
		kubeconfig.Credentials{Token: a.token.Bootstrap()}); err != nil {
		return err
	}
	if err := a.pointKubeletAt(a.apiURL); err != nil {
		return err
	}
	a.caFile, a.bootstrapKubeconfig = caFile, bootstrapKubeconfig
	return nil
}

// fetchClusterConfig reads the settings the server publishes for every node
// (internal/clusterconfig), as the node once it has joined, else with the
// join token. The last copy read is kept in the data dir: an agent that
// restarts while the server is down goes on with it.
func (a *Agent) fetchClusterConfig(ctx context.Context) error {
	log, cached := a.cfg.Log, filepath.Join(a.cfg.DataDir, clusterConfigFile)
	for attempt := 0; ; attempt++ {
		kc := a.bootstrapKubeconfig
		if path, ok := a.nodeCredentials(); ok {
			kc = path
		}
		cc, err := fetchClusterConfig(ctx, kc)
		if err == nil {
			a.cluster = cc
			data, _ := json.Marshal(cc)
			return os.WriteFile(cached, data, 0o600)
		}
		if data, rerr := os.ReadFile(cached); rerr == nil {
			if cc, derr := clusterconfig.Decode(data); derr == nil {
				log.Warn("cannot read the cluster configuration from the server; using the copy of the last start", "err", err, "file", cached)
				a.cluster = cc
				return nil
			}
		}
		// Refused credentials may be a server still writing its bootstrap
		// (the token's Secret, the reader's RoleBinding): give it a while
		// before calling the token wrong.
		if (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) && attempt >= refusedJoinAttempts {
			return fmt.Errorf("%w: the server refuses this node's join token (%v): it has expired, was deleted (skiff token list on a server shows the valid ones), or is not this cluster's; skiff token create makes a new one", component.ErrConfig, err)
		}
		if attempt%10 == 0 {
			log.Warn("waiting for the server's cluster configuration", "server", a.cfg.Server, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func fetchClusterConfig(ctx context.Context, kubeconfigPath string) (clusterconfig.Config, error) {
	client, err := clientFor(kubeconfigPath)
	if err != nil {
		return clusterconfig.Config{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return clusterconfig.Fetch(ctx, client)
}

// clientFor is the agent's client with the credentials of a kubeconfig
// (the join token's or the node's).
func clientFor(kubeconfigPath string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rest.AddUserAgent(rc, "skiff-agent"))
}

func (a *Agent) configureKubelet(s *options.KubeletServer) {
	cfg, endpoint := a.cfg, a.endpoint
	f, kc := &s.KubeletFlags, &s.KubeletConfiguration
	f.HostnameOverride = cfg.NodeName
	f.NodeIP = cfg.NodeIP
	f.RootDirectory = filepath.Join(cfg.DataDir, "kubelet")
	f.CertDirectory = KubeletCertDir(cfg.DataDir)
	f.KubeConfig = a.kubeletKubeconfig()
	f.BootstrapKubeconfig = a.bootstrapKubeconfig
	f.NodeLabels = cfg.Labels

	kc.ContainerRuntimeEndpoint = endpoint
	kc.ImageServiceEndpoint = endpoint
	kc.CgroupDriver = "cgroupfs"
	kc.CgroupRoot = a.cgroupRoot()
	kc.FailSwapOn = false
	kc.FailCgroupV1 = false
	kc.Port = int32(cfg.KubeletPort)
	kc.ReadOnlyPort = 0
	kc.HealthzPort = 0
	kc.Authentication.Anonymous.Enabled = false
	kc.Authentication.Webhook.Enabled = true
	kc.Authentication.X509.ClientCAFile = a.caFile
	kc.Authorization.Mode = "Webhook"
	kc.ClusterDomain = a.cluster.ClusterDomain
	kc.ClusterDNS = []string{a.cluster.ClusterDNS}
	kc.PodLogsDir = a.podLogsDir()
	kc.RotateCertificates = true
	kc.SerializeImagePulls = false
	kc.ProtectKernelDefaults = false
	kc.StaticPodPath = ""
	kc.ResolverConfig = resolvConf()
	kc.NodeStatusReportFrequency = metav1.Duration{Duration: time.Minute}
	// The machine's disk is shared with other work; do not evict pods for
	// a disk a user did not give to skiff.
	kc.EvictionHard = map[string]string{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
	kc.ImageGCHighThresholdPercent = 100
	kc.ImageGCLowThresholdPercent = 99
}

// podLogsDir holds the node's container logs (the kubelet's podLogsDir).
func (a *Agent) podLogsDir() string { return podLogsDir(a.cfg.DataDir) }

func podLogsDir(dataDir string) string { return filepath.Join(dataDir, "pod-logs") }

// cgroupRoot is the parent of the node's pod cgroups: one per node name.
func (a *Agent) cgroupRoot() string { return "/skiff/" + a.cfg.NodeName }

// resolvConf is the file pods with dnsPolicy Default get their resolvers from.
func resolvConf() string {
	// systemd-resolved's stub at 127.0.0.53 is unreachable from a pod.
	if _, err := os.Stat("/run/systemd/resolve/resolv.conf"); err == nil {
		return "/run/systemd/resolve/resolv.conf"
	}
	return "/etc/resolv.conf"
}

// ensureCA returns the path of the cluster CA, discovering it from Server
// through the join token's hash when no CA file was given and no earlier
// start discovered the one the token names (so that a node restarted while
// Server is down reaches the other API servers).
func (a *Agent) ensureCA() (string, error) {
	if a.cfg.CAFile != "" {
		return a.cfg.CAFile, nil
	}
	path := filepath.Join(a.cfg.DataDir, "ca.crt")
	if hash, err := jointoken.HashFile(path); err == nil && hash == a.token.CAHash {
		return path, nil
	}
	var lastErr error
	for i := 0; i < 30; i++ {
		pem, err := jointoken.DiscoverCA(a.cfg.Server, a.token)
		if err == nil {
			return path, os.WriteFile(path, pem, 0o644)
		}
		lastErr = err
		var netErr net.Error
		if !errors.As(err, &netErr) && !isConnRefused(err) {
			break
		}
		time.Sleep(time.Second)
	}
	return "", fmt.Errorf("discover the cluster CA: %w", lastErr)
}

// bootstrapKubelet obtains the kubelet's client certificate with the join
// token before the kubelet starts (upstream's TLS bootstrap, the kubelet's
// own code; a kubeconfig whose certificate is still valid is kept). The
// kubelet rotates the certificate from then on. Left to the kubelet, which
// bootstraps in the background when it rotates certificates, the first
// start would run a second with no credentials and then drop every
// connection opened meanwhile ("Certificate rotation detected, shutting
// down client connections"), failing the requests and watches in flight.
func (a *Agent) bootstrapKubelet(ctx context.Context) error {
	current := a.kubeletClientCert()
	before, _ := os.Readlink(current)
	err := bootstrap.LoadClientCert(ctx, a.kubeletKubeconfig(), a.bootstrapKubeconfig, filepath.Dir(current), types.NodeName(a.cfg.NodeName))
	if err == nil {
		// The store links current.pem to each new certificate's file.
		if after, _ := os.Readlink(current); after != before {
			a.cfg.Log.Info("the kubelet has its client certificate", "node", a.cfg.NodeName, "file", after)
		}
		return nil
	}
	if ctx.Err() != nil {
		return nil
	}
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("%w: the server refuses the kubelet's certificate request with this node's join token (%v): skiff token create makes a new one", component.ErrConfig, err)
	}
	return fmt.Errorf("the kubelet's client certificate: %w", err)
}

// kubeletClientCert is the kubelet's client certificate and key: upstream's
// certificate store links it to the current dated file in its cert dir.
func (a *Agent) kubeletClientCert() string {
	return filepath.Join(KubeletCertDir(a.cfg.DataDir), "kubelet-client-current.pem")
}

// kubeletKubeconfig is the kubeconfig the kubelet writes once it has its
// client certificate (TLS bootstrap), and acts as the node with.
func (a *Agent) kubeletKubeconfig() string { return filepath.Join(a.cfg.DataDir, "kubelet.kubeconfig") }

// nodeCredentials returns the kubeconfig that acts as the node, once the
// kubelet has obtained its client certificate.
func (a *Agent) nodeCredentials() (string, bool) {
	kubeconfigPath := a.kubeletKubeconfig()
	_, err1 := os.Stat(kubeconfigPath)
	_, err2 := os.Stat(a.kubeletClientCert())
	return kubeconfigPath, err1 == nil && err2 == nil
}

// waitNodeClient waits for the kubelet's credentials and makes the client
// that acts as the node, for the components after it.
func (a *Agent) waitNodeClient(ctx context.Context) error {
	for {
		if path, ok := a.nodeCredentials(); ok {
			client, err := clientFor(path)
			if err != nil {
				return err
			}
			a.nodeKubeconfig, a.nodeClient = path, client
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runProxy runs kube-proxy in nftables mode with the node's credentials.
func (a *Agent) runProxy(ctx context.Context) error {
	flags := map[string]string{
		"kubeconfig":             a.nodeKubeconfig,
		"hostname-override":      a.cfg.NodeName,
		"proxy-mode":             "nftables",
		"cluster-cidr":           a.cluster.ClusterCIDR,
		"conntrack-max-per-core": "0",
		"healthz-bind-address":   "",
	}
	merged, err := component.Merge(flags, a.cfg.ProxyArgs)
	if err != nil {
		return err
	}
	return component.Proxy(ctx, component.Args(merged, nil))
}

// annotateNode records on the Node, with the node's own credentials once
// the kubelet has registered it, where its local-path volumes live
// (DATA/storage; internal/controller/localpath reads it) and the ports its
// Ingress proxy serves (internal/controller/ingresslb publishes them as the
// skiff-ingress Service), or that it runs none. It retries until it has
// succeeded or ctx ends.
func (a *Agent) annotateNode(ctx context.Context) error {
	log, client := a.cfg.Log, a.nodeClient
	dir := filepath.Join(a.cfg.DataDir, "storage")
	var ports *string // null in a merge patch: the annotation is removed
	if !a.cfg.DisableIngress {
		ports = ptr.To(ingresslb.FormatPorts(a.cfg.IngressHTTPPort, a.cfg.IngressHTTPSPort))
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]*string{
			localpath.NodeStorageDirAnnotation: &dir,
			ingresslb.NodePortsAnnotation:      ports,
		},
	}})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		_, err := client.CoreV1().Nodes().Patch(ctx, a.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			log.Info("annotated the node", "node", a.cfg.NodeName, "storage-dir", dir, "ingress-ports", ptr.Deref(ports, "none"))
			return nil
		}
		if !apierrors.IsNotFound(err) { // NotFound: the kubelet has not registered the Node yet
			log.Warn("cannot annotate the node; retrying", "node", a.cfg.NodeName, "err", err, "after", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}
