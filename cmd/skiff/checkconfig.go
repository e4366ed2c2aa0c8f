package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/agent"
	"github.com/skiffdev/skiff/internal/component"
)

func newCheckConfigCommand() *cobra.Command {
	var (
		o              agent.CheckOptions
		http, https    int
		disableIngress bool
	)
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Report what this host lacks to run a skiff server or node, with the fix for each",
		Long: "check-config looks at what a node needs (root, cgroup v2 and its controllers, containerd, runc, ctr, nft, " +
			"the CNI plugins, the overlay, nf_tables, br_netfilter and vxlan kernel features, free ports) and prints each " +
			"with its fix. It exits 1 when something a node cannot run without is missing. Every agent runs the same " +
			"checks before it starts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !disableIngress {
				o.IngressPorts = []int{http, https}
			}
			findings := agent.CheckHost(agent.RealHost(), o)
			out := cmd.OutOrStdout()
			for _, f := range findings {
				switch {
				case f.OK:
					fmt.Fprintf(out, "[ok]    %s\n", f.Check)
				case f.Fatal:
					fmt.Fprintf(out, "[FAIL]  %s: %s\n        fix: %s\n", f.Check, f.Problem, f.Fix)
				default:
					fmt.Fprintf(out, "[warn]  %s: %s\n        fix: %s\n", f.Check, f.Problem, f.Fix)
				}
			}
			if n := len(agent.FatalFindings(findings)); n > 0 {
				return fmt.Errorf("%w: %d checks failed", component.ErrConfig, n)
			}
			fmt.Fprintln(out, "this host can run skiff")
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.ServerPort, "https-listen-port", 6443, "the API server's port to check (0: none, for a node that runs no server)")
	f.IntVar(&o.KubeletPort, "kubelet-port", 10250, "the kubelet's port to check")
	f.IntVar(&http, "ingress-http-port", 80, "the ingress proxy's HTTP port to check")
	f.IntVar(&https, "ingress-https-port", 443, "the ingress proxy's HTTPS port to check")
	f.BoolVar(&disableIngress, "disable-ingress", false, "the node runs no ingress proxy: do not check its ports")
	f.StringVar(&o.PodNetwork, "pod-network", "host-gw", "host-gw or vxlan (vxlan needs the kernel's vxlan module)")
	f.StringVar(&o.CNIBinDir, "cni-bin-dir", "/usr/lib/cni", "where the CNI plugins are")
	return cmd
}
