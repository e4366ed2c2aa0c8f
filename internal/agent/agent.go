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
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/cmd/kubelet/app/options"

	"github.com/skiffdev/skiff/internal/agent/netpol"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/controller/localpath"
	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/kubeconfig"
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
	// ClusterDNS and ClusterDomain are handed to pods' resolv.conf.
	ClusterDNS    string
	ClusterDomain string
	// CNIBinDir holds the CNI plugins (Debian: /usr/lib/cni).
	CNIBinDir string
	// KubeletArgs are extra kubelet flags, "key=value" each.
	KubeletArgs []string
	// Labels are registered with the node.
	Labels map[string]string
	// ClusterCIDR is the pod network (kube-proxy's --cluster-cidr).
	ClusterCIDR string
	// PodNetwork is how nodes reach each other's pods: "host-gw" (default;
	// direct routes, nodes share a link) or "vxlan" (an overlay).
	PodNetwork string
	// DisableProxy turns kube-proxy off; ProxyArgs are extra kube-proxy flags.
	DisableProxy bool
	ProxyArgs    []string
	// DisableNetworkPolicy turns NetworkPolicy enforcement (internal/agent/
	// netpol) off on this node.
	DisableNetworkPolicy bool

	Log *slog.Logger
}

// Agent is a node agent.
type Agent struct {
	cfg   Config
	token jointoken.Token
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
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	switch cfg.PodNetwork {
	case "":
		cfg.PodNetwork = BackendHostGW
	case BackendHostGW, BackendVXLAN:
	default:
		return nil, fmt.Errorf("%w: --pod-network %q: want host-gw or vxlan", component.ErrConfig, cfg.PodNetwork)
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = "10.42.0.0/16"
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
	return &Agent{cfg: cfg, token: tok}, nil
}

// NodeName is the name the node registers with.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Check refuses, before anything starts, the settings the node could never
// run with.
func (cfg *Config) Check() error {
	if cfg.NodeIP != "" && net.ParseIP(cfg.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q is not an IP address", cfg.NodeIP)
	}
	if cfg.ClusterDNS != "" && net.ParseIP(cfg.ClusterDNS) == nil {
		return fmt.Errorf("--cluster-dns %q is not an IP address", cfg.ClusterDNS)
	}
	if _, _, err := net.ParseCIDR(cfg.ClusterCIDR); err != nil {
		return fmt.Errorf("--cluster-cidr %q is not a CIDR such as 10.42.0.0/16", cfg.ClusterCIDR)
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
	cfg, log := a.cfg, a.cfg.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
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
	bootstrapKubeconfig := filepath.Join(cfg.DataDir, "bootstrap.kubeconfig")
	if err := kubeconfig.Write(bootstrapKubeconfig, cfg.Server, caPEM, "kubelet-bootstrap",
		kubeconfig.Credentials{Token: a.token.Bootstrap()}); err != nil {
		return err
	}

	endpoint := cfg.ContainerRuntimeEndpoint
	errc := make(chan error, 5) // containerd, kubelet, kube-proxy, pod network, network policy
	if endpoint == "" {
		ctrd := &containerd{
			dir:        filepath.Join(cfg.DataDir, "containerd"),
			cniConfDir: filepath.Join(cfg.DataDir, "cni", "net.d"),
			cniBinDir:  cfg.CNIBinDir,
			ipamDir:    filepath.Join(cfg.DataDir, "cni", "ipam"),
			log:        log,
		}
		if cfg.PodNetwork == BackendVXLAN {
			ctrd.mtu = 1500 - vxlanOverhead
		}
		endpoint = ctrd.Endpoint()
		mirror, err := startMirror(ctx, ctrd.dir, cfg.ImagesDir, log)
		if err != nil {
			return err
		}
		if mirror != nil {
			ctrd.mirror = mirror.URL()
			go func() { _ = mirror.Run(ctx) }()
		}
		ready := make(chan struct{})
		go func() { errc <- ctrd.Run(ctx, ready) }()
		select {
		case <-ready:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
		if err := importImages(ctx, ctrd.socket(), cfg.ImagesDir, log); err != nil {
			return err
		}
	}

	// Teardown reads the node name to find the node's cgroups.
	if err := os.WriteFile(filepath.Join(cfg.DataDir, nodeNameFile), []byte(cfg.NodeName), 0o600); err != nil {
		return err
	}
	if err := ensureCgroupRoot(a.cgroupRoot()); err != nil {
		return fmt.Errorf("create cgroup %s: %w", a.cgroupRoot(), err)
	}
	configure := func(s *options.KubeletServer) { a.configureKubelet(s, endpoint, caFile, bootstrapKubeconfig) }
	go func() {
		errc <- supervise.Run(ctx, log, "kubelet", supervise.DefaultBackoff, func(ctx context.Context) error {
			return component.Kubelet(ctx, configure, cfg.KubeletArgs)
		})
	}()
	if !cfg.DisableProxy {
		go func() { errc <- a.runProxy(ctx) }()
	}
	go func() { errc <- a.runPodNetwork(ctx) }()
	if !cfg.DisableNetworkPolicy {
		go func() { errc <- a.runNetworkPolicy(ctx) }()
	}
	go a.annotateStorageDir(ctx)
	log.Info("node agent started", "node", cfg.NodeName, "runtime", endpoint)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func (a *Agent) configureKubelet(s *options.KubeletServer, endpoint, caFile, bootstrapKubeconfig string) {
	cfg := a.cfg
	f, kc := &s.KubeletFlags, &s.KubeletConfiguration
	f.HostnameOverride = cfg.NodeName
	f.NodeIP = cfg.NodeIP
	f.RootDirectory = filepath.Join(cfg.DataDir, "kubelet")
	f.CertDirectory = filepath.Join(cfg.DataDir, "kubelet", "pki")
	f.KubeConfig = filepath.Join(cfg.DataDir, "kubelet.kubeconfig")
	f.BootstrapKubeconfig = bootstrapKubeconfig
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
	kc.Authentication.X509.ClientCAFile = caFile
	kc.Authorization.Mode = "Webhook"
	kc.ClusterDomain = cfg.ClusterDomain
	if cfg.ClusterDNS != "" {
		kc.ClusterDNS = []string{cfg.ClusterDNS}
	}
	kc.PodLogsDir = filepath.Join(cfg.DataDir, "pod-logs")
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

// ensureCA returns the path of the cluster CA, discovering it through the
// join token's hash when no CA file was given.
func (a *Agent) ensureCA() (string, error) {
	if a.cfg.CAFile != "" {
		return a.cfg.CAFile, nil
	}
	path := filepath.Join(a.cfg.DataDir, "ca.crt")
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

// waitNodeCredentials waits until the kubelet has obtained its client
// certificate, and returns the kubeconfig that uses it.
func (a *Agent) waitNodeCredentials(ctx context.Context) (string, bool) {
	kubeconfigPath := filepath.Join(a.cfg.DataDir, "kubelet.kubeconfig")
	clientCert := filepath.Join(a.cfg.DataDir, "kubelet", "pki", "kubelet-client-current.pem")
	for {
		_, err1 := os.Stat(kubeconfigPath)
		_, err2 := os.Stat(clientCert)
		if err1 == nil && err2 == nil {
			return kubeconfigPath, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodeClient waits for the kubelet's credentials and returns a client that
// acts as the node; it returns (nil, nil) if ctx ends first.
func (a *Agent) nodeClient(ctx context.Context) (kubernetes.Interface, error) {
	kubeconfigPath, ok := a.waitNodeCredentials(ctx)
	if !ok {
		return nil, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(rc, "skiff-agent"))
	if err != nil {
		return nil, err
	}
	return client, nil
}

// runPodNetwork keeps routes to the other nodes' pod CIDRs, with the node's
// credentials.
func (a *Agent) runPodNetwork(ctx context.Context) error {
	client, err := a.nodeClient(ctx)
	if err != nil || client == nil { // nil, nil: ctx ended first
		return err
	}
	pn := &podNetwork{nodeName: a.cfg.NodeName, clusterCIDR: a.cfg.ClusterCIDR, backend: a.cfg.PodNetwork, client: client, log: a.cfg.Log}
	return supervise.Run(ctx, a.cfg.Log, "pod-network", supervise.DefaultBackoff, pn.Run)
}

// runNetworkPolicy enforces NetworkPolicies for the node's pods, with the
// node's credentials (bound to the skiff:network-policy ClusterRole).
func (a *Agent) runNetworkPolicy(ctx context.Context) error {
	client, err := a.nodeClient(ctx)
	if err != nil || client == nil { // nil, nil: ctx ended first
		return err
	}
	c, err := netpol.New(netpol.Config{NodeName: a.cfg.NodeName, Client: client, Log: a.cfg.Log})
	if err != nil {
		return err
	}
	return supervise.Run(ctx, a.cfg.Log, "network-policy", supervise.DefaultBackoff, c.Run)
}

// runProxy runs kube-proxy in nftables mode with the node's credentials,
// once the kubelet has obtained them.
func (a *Agent) runProxy(ctx context.Context) error {
	kubeconfigPath, ok := a.waitNodeCredentials(ctx)
	if !ok {
		return nil
	}
	flags := map[string]string{
		"kubeconfig":             kubeconfigPath,
		"hostname-override":      a.cfg.NodeName,
		"proxy-mode":             "nftables",
		"cluster-cidr":           a.cfg.ClusterCIDR,
		"conntrack-max-per-core": "0",
		"healthz-bind-address":   "",
	}
	merged, err := component.Merge(flags, a.cfg.ProxyArgs)
	if err != nil {
		return err
	}
	args := component.Args(merged, nil)
	return supervise.Run(ctx, a.cfg.Log, "kube-proxy", supervise.DefaultBackoff, func(ctx context.Context) error {
		return component.Proxy(ctx, args)
	})
}

// annotateStorageDir records on the Node where its local-path volumes live
// (DATA/storage; internal/controller/localpath reads it), with the node's own
// credentials, once the kubelet has registered the Node. It retries until it
// has succeeded or ctx ends.
func (a *Agent) annotateStorageDir(ctx context.Context) {
	log := a.cfg.Log
	client, err := a.nodeClient(ctx)
	if err != nil || client == nil {
		if err != nil {
			log.Warn("cannot record the node's storage directory", "err", err)
		}
		return
	}
	dir := filepath.Join(a.cfg.DataDir, "storage")
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{localpath.NodeStorageDirAnnotation: dir},
	}})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		_, err := client.CoreV1().Nodes().Patch(ctx, a.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			log.Info("recorded the node's storage directory", "node", a.cfg.NodeName, "dir", dir)
			return
		}
		if !apierrors.IsNotFound(err) { // NotFound: the kubelet has not registered the Node yet
			log.Warn("cannot record the node's storage directory; retrying", "node", a.cfg.NodeName, "err", err, "after", delay)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
