package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiffdev/skiff/internal/agent"
	"github.com/skiffdev/skiff/internal/progress"
)

// agentFlags are the node flags `skiff agent` and `skiff server` share.
type agentFlags struct {
	cfg    agent.Config
	labels []string
}

func (a *agentFlags) register(f *pflag.FlagSet) {
	f.StringVar(&a.cfg.NodeName, "node-name", "", "node name (default: the host name)")
	f.StringVar(&a.cfg.NodeIP, "node-ip", "", "node's InternalIP (default: the host's main address)")
	f.IntVar(&a.cfg.KubeletPort, "kubelet-port", 10250, "kubelet HTTPS port")
	f.StringVar(&a.cfg.ContainerRuntimeEndpoint, "container-runtime-endpoint", "", "existing CRI runtime socket (unix:///...) to use instead of skiff's own containerd")
	f.StringVar(&a.cfg.ImagesDir, "images-dir", "", "directory of OCI image tarballs to import at start (default: DATA/images or the build's images/out)")
	f.StringArrayVar(&a.cfg.KubeletArgs, "kubelet-arg", nil, "extra kubelet flag, key=value (repeatable)")
	f.BoolVar(&a.cfg.DisableProxy, "disable-kube-proxy", false, "do not run kube-proxy (Services) on this node")
	f.StringArrayVar(&a.cfg.ProxyArgs, "kube-proxy-arg", nil, "extra kube-proxy flag, key=value (repeatable)")
	f.BoolVar(&a.cfg.DisableNetworkPolicy, "disable-network-policy", false, "do not enforce NetworkPolicies on this node")
	f.StringVar(&a.cfg.PodNetwork, "pod-network", "host-gw", "how nodes reach each other's pods: host-gw (nodes share a link) or vxlan (an overlay)")
	f.StringArrayVar(&a.labels, "node-label", nil, "label to register the node with, key=value (repeatable)")
	f.IntVar(&a.cfg.IngressHTTPPort, "ingress-http-port", 80, "port the node's Ingress proxy serves HTTP on, on every address")
	f.IntVar(&a.cfg.IngressHTTPSPort, "ingress-https-port", 443, "port the node's Ingress proxy serves HTTPS on, on every address")
	f.BoolVar(&a.cfg.DisableIngress, "disable-ingress", false, "do not run the Ingress proxy on this node")
	f.BoolVar(&a.cfg.IngressAccessLog, "ingress-access-log", false, "log one line per request the Ingress proxy serves")
	f.BoolVar(&a.cfg.DisableMesh, "disable-mesh", false, "do not run the mesh proxy on this node (ports 15001, 15006, 15008, 15020)")
	f.IntVar(&a.cfg.LBServerPort, "lb-server-port", agent.DefaultLBServerPort, "port on 127.0.0.1 of the agent's load balancer over all API servers, which the node's kubeconfigs point at (skiff server's own node talks to its API server directly)")
}

func (a *agentFlags) complete(dataDir string) (agent.Config, error) {
	cfg := a.cfg
	cfg.Labels = map[string]string{}
	for _, l := range a.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return cfg, fmt.Errorf("--node-label %q: expected key=value", l)
		}
		cfg.Labels[k] = v
	}
	for i, arg := range cfg.KubeletArgs {
		if !strings.HasPrefix(arg, "--") {
			cfg.KubeletArgs[i] = "--" + arg
		}
	}
	if cfg.ImagesDir == "" {
		cfg.ImagesDir = defaultImagesDir(dataDir)
	}
	cfg.Log = newLogger("skiff-agent")
	cfg.Progress = func(done, total int, waiting string) {
		if done == total {
			status.Set("") // the node is up: nothing more to wait for
			return
		}
		status.Set(progress.Steps("joining the cluster as a node", done, total, waiting))
	}
	return cfg, nil
}

// defaultImagesDir is DATA/images if it exists, else images/out next to the
// binary's bin/ directory (a source checkout after `make build`).
func defaultImagesDir(dataDir string) string {
	candidates := []string{filepath.Join(dataDir, "images")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "images", "out"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return ""
}

func newAgentCommand() *cobra.Command {
	var (
		flags     agentFlags
		tokenFile string
		dataDir   string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join this machine to a cluster as a node and run its pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := os.ReadFile(tokenFile)
			if err != nil {
				return fmt.Errorf("read --token-file: %w", err)
			}
			cfg, err := flags.complete(dataDir)
			if err != nil {
				return err
			}
			cfg.DataDir, cfg.Token = dataDir, string(token)
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.cfg.Server, "server", "", "API server URL, e.g. https://10.0.0.1:6443")
	f.StringVar(&tokenFile, "token-file", "", "file holding the join token (the server's DATA/token)")
	f.StringVar(&flags.cfg.CAFile, "ca-file", "", "cluster CA (default: discovered from the server and checked against the token)")
	f.StringVar(&dataDir, "data-dir", defaultAgentDataDir(), "directory for containerd, the kubelet and the node's credentials")
	// The cluster's settings come from the server now (internal/clusterconfig).
	for _, name := range []string{"cluster-cidr", "cluster-dns"} {
		f.String(name, "", "ignored: the server's --"+name+" applies")
		_ = f.MarkDeprecated(name, "the agent takes it from the server; this flag is ignored and will be removed")
	}
	flags.register(f)
	_ = cmd.MarkFlagRequired("server")
	_ = cmd.MarkFlagRequired("token-file")
	cmd.AddCommand(newTeardownCommand())
	return cmd
}

func newTeardownCommand() *cobra.Command {
	var (
		dataDir    string
		keepShared bool
	)
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Stop the containerd, containers and mounts a stopped agent left behind (pods are lost)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return agent.Teardown(cmd.Context(), dataDir, keepShared)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultAgentDataDir(), "the agent's data dir (for the server's agent: SERVER_DATA_DIR/agent)")
	cmd.Flags().BoolVar(&keepShared, "keep-shared", false, "leave the pod bridge and nftables tables other agents in this network namespace share")
	return cmd
}

func defaultAgentDataDir() string { return filepath.Join(defaultDataDir(), "agent") }
