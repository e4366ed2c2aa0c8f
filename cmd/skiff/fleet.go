package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/fleet"
	fleetagent "github.com/skiffdev/skiff/internal/fleet/agent"
	"github.com/skiffdev/skiff/internal/fleet/upstream"
	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/server"
)

func newFleetCommand() *cobra.Command {
	var dataDir, kubeconfig string
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Manage a fleet of clusters: join a downstream to an upstream, create and revoke join tokens",
		Long: `An upstream skiff (skiff server --fleet-upstream) holds the desired state of a fleet and places it
on downstream clusters with PropagationPolicies; each downstream runs an agent that dials out to the
upstream. See docs/fleet.md.`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the local server (its admin kubeconfig)")
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to act on (default: the data dir's admin kubeconfig)")
	config := func() (*rest.Config, error) {
		path := kubeconfig
		if path == "" {
			path = server.PathsIn(dataDir).Kubeconfig
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		cfg.Timeout = 30 * time.Second
		return cfg, nil
	}
	// client is config's clientset, with the config.
	client := func() (*rest.Config, kubernetes.Interface, error) {
		cfg, err := config()
		if err != nil {
			return nil, nil, err
		}
		kube, err := kubernetes.NewForConfig(cfg)
		return cfg, kube, err
	}

	var ttl time.Duration
	var labels []string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "On the upstream: register cluster NAME and print a token it joins with",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			cfg, kube, err := client()
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			caPEM := cfg.CAData
			if len(caPEM) == 0 && cfg.CAFile != "" {
				if caPEM, err = os.ReadFile(cfg.CAFile); err != nil {
					return err
				}
			}
			hash, err := jointoken.Hash(caPEM)
			if err != nil {
				return fmt.Errorf("the kubeconfig's CA: %w", err)
			}
			bearer, err := upstream.CreateAccess(cmd.Context(), kube, dyn, args[0], l, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), fleet.Token{CAHash: hash, Bearer: bearer}.String())
			fmt.Fprintf(cmd.ErrOrStderr(), "On the downstream cluster, with this token in FILE (valid %s):\n  skiff fleet join --upstream %s --token-file FILE --name %s\n", ttl, cfg.Host, args[0])
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token may be used to join (10m or more)")
	create.Flags().StringArrayVar(&labels, "label", nil, "label of the Cluster, key=value (repeatable)")
	token := &cobra.Command{Use: "token", Short: "Join tokens for downstream clusters"}
	token.AddCommand(create)

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "On the upstream: revoke cluster NAME's agent (every token of it stops working; the Cluster stays, NotReady)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, kube, err := client()
			if err != nil {
				return err
			}
			if err := upstream.RevokeAccess(cmd.Context(), kube, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s revoked\n", args[0])
			return nil
		},
	}

	var jo fleetagent.JoinOptions
	var tokenFile string
	join := &cobra.Command{
		Use:   "join --upstream URL --token-file FILE --name NAME",
		Short: "Join this cluster (or --kubeconfig's) to a fleet upstream; its fleet agent dials out to the upstream",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jo.Upstream == "" || tokenFile == "" || jo.Name == "" {
				return fmt.Errorf("--upstream, --token-file and --name are required")
			}
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				return err
			}
			if jo.Token, err = fleet.ParseToken(string(b)); err != nil {
				return err
			}
			if jo.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			_, local, err := client()
			if err != nil {
				return err
			}
			if err := fleetagent.Join(cmd.Context(), local, jo); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "joined %s as cluster %s\n", jo.Upstream, jo.Name)
			if kubeconfig != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "If that cluster is not a skiff server, run its agent: skiff fleet agent --kubeconfig %s\n", kubeconfig)
			}
			return nil
		},
	}
	join.Flags().StringVar(&jo.Upstream, "upstream", "", "the upstream's API server URL (https://HOST:6443)")
	join.Flags().StringVar(&tokenFile, "token-file", "", "file holding the token from `skiff fleet token create NAME` on the upstream")
	join.Flags().StringVar(&jo.Name, "name", "", "this cluster's name in the fleet (as given to `skiff fleet token create`)")
	join.Flags().StringArrayVar(&labels, "label", nil, "label of the Cluster, key=value (repeatable)")
	join.Flags().StringVar(&jo.Region, "region", "", "the Cluster's spec.region")
	join.Flags().StringVar(&jo.Zone, "zone", "", "the Cluster's spec.zone")
	join.Flags().StringVar(&jo.Provider, "provider", "", "the Cluster's spec.provider")

	leave := &cobra.Command{
		Use:   "leave",
		Short: "Stop this cluster's fleet agent (the upstream keeps the Cluster, NotReady, until deleted there)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, local, err := client()
			if err != nil {
				return err
			}
			return fleetagent.Leave(cmd.Context(), local)
		},
	}

	agentCmd := &cobra.Command{
		Use:   "agent --kubeconfig FILE",
		Short: "Run the fleet agent of a cluster that is not a skiff server (skiff servers run their own), in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config()
			if err != nil {
				return err
			}
			cfg.Timeout = 0 // watches
			cfg.QPS, cfg.Burst = 200, 400
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return fleetagent.Run(ctx, fleetagent.Config{Local: cfg, Log: newLogger("fleet-agent")})
		},
	}
	cmd.AddCommand(token, revoke, join, leave, agentCmd)
	return cmd
}
