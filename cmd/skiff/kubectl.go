package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // client auth plugins, as kubectl has them
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	"github.com/skiffdev/skiff/internal/fleet/upstream"
	"github.com/skiffdev/skiff/internal/server"
)

// runKubectl is `skiff kubectl ARGS`: the real kubectl, with kubectl's own
// argument handling, output and exit codes. Without KUBECONFIG or
// --kubeconfig it uses the local server's admin kubeconfig, as k3s does.
func runKubectl(args []string) {
	if os.Getenv("KUBECONFIG") == "" && !hasFlag(args, "kubeconfig") {
		path := server.PathsIn(defaultDataDir()).Kubeconfig
		if _, err := os.Stat(path); err == nil {
			os.Setenv("KUBECONFIG", path)
		}
	}
	args, cleanup, err := fleetCluster(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	os.Args = append([]string{"kubectl"}, args...)
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	err = cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand())
	cleanup()
	if err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}

// fleetCluster turns `--cluster NAME`, when NAME is not a cluster of the
// kubeconfig but a Cluster of the fleet upstream the kubeconfig points at,
// into a kubeconfig whose server is the upstream's proxy path to that
// cluster (docs/fleet.md): the upstream's RBAC (clusters/proxy) decides who
// may reach it, and the request is made there as the same user.
func fleetCluster(args []string) ([]string, func(), error) {
	name, rest := "", make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case a == "--cluster" && i+1 < len(args):
			name = args[i+1]
			i++
		case strings.HasPrefix(a, "--cluster="):
			name = strings.TrimPrefix(a, "--cluster=")
		default:
			rest = append(rest, a)
		}
	}
	nothing := func() {}
	if name == "" {
		return args, nothing, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	for i, a := range rest {
		if a == "--kubeconfig" && i+1 < len(rest) {
			rules.ExplicitPath = rest[i+1]
		} else if p, ok := strings.CutPrefix(a, "--kubeconfig="); ok {
			rules.ExplicitPath = p
		}
	}
	cfg, err := rules.Load()
	if err != nil {
		return nil, nothing, err
	}
	if _, ok := cfg.Clusters[name]; ok {
		return args, nothing, nil // kubectl's own --cluster
	}
	if len(cfg.Clusters) == 0 {
		return nil, nothing, fmt.Errorf("--cluster %s: no kubeconfig to reach the fleet upstream through: set KUBECONFIG or --kubeconfig to the upstream's (DATA/kubeconfig.yaml on its server; %s is not there)", name, server.PathsIn(defaultDataDir()).Kubeconfig)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil {
		return nil, nothing, fmt.Errorf("--cluster %s: the kubeconfig has no current context to reach the fleet upstream through", name)
	}
	up := cfg.Clusters[ctx.Cluster].DeepCopy()
	up.Server = strings.TrimSuffix(up.Server, "/") + upstream.ProxyPrefix + name + "/proxy"
	cfg.Clusters["fleet/"+name] = up
	c := ctx.DeepCopy()
	c.Cluster = "fleet/" + name
	cfg.Contexts["fleet/"+name] = c
	cfg.CurrentContext = "fleet/" + name
	f, err := os.CreateTemp("", "skiff-kubectl-*.yaml")
	if err != nil {
		return nil, nothing, err
	}
	f.Close()
	if err := clientcmd.WriteToFile(*cfg, f.Name()); err != nil {
		os.Remove(f.Name())
		return nil, nothing, err
	}
	out := make([]string, 0, len(rest)+2)
	for i := 0; i < len(rest); i++ {
		if rest[i] == "--kubeconfig" {
			i++
			continue
		}
		if !strings.HasPrefix(rest[i], "--kubeconfig=") {
			out = append(out, rest[i])
		}
	}
	return append([]string{"--kubeconfig", f.Name()}, out...), func() { os.Remove(f.Name()) }, nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || len(a) > len(name)+3 && a[:len(name)+3] == "--"+name+"=" {
			return true
		}
	}
	return false
}

// newKubectlCommand lists kubectl in skiff's help. main runs `skiff kubectl`
// before cobra sees it, so kubectl parses its own flags and prints its own
// help; this command is reached only through `skiff help kubectl`.
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [flags] COMMAND",
		Short:              "Run kubectl (the real one, embedded) against this machine's server by default",
		DisableFlagParsing: true,
		Run:                func(_ *cobra.Command, args []string) { runKubectl(args) },
	}
}
