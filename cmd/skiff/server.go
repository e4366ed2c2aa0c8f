package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/server"
)

func newServerCommand() *cobra.Command {
	var (
		cfg       server.Config
		datastore string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API server over etcd, controllers, scheduler)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if datastore != "" {
				cfg.DatastoreEndpoints = strings.Split(datastore, ",")
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "skiff-server")
			s, err := server.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return s.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for the datastore, certificates, kubeconfig and join token")
	f.IntVar(&cfg.HTTPSPort, "https-listen-port", 6443, "port the API server serves HTTPS on")
	f.StringVar(&cfg.BindAddress, "bind-address", "0.0.0.0", "address the API server listens on")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "address published for the kubernetes Service (default: the host's main address)")
	f.StringVar(&datastore, "datastore-endpoint", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd in the data dir)")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.42.0.0/16", "pod network, split into a podCIDR per node")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "10.43.0.0/16", "range ClusterIPs are allocated from")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra host names or addresses for the API server's certificate")
	f.StringArrayVar(&cfg.APIServerArgs, "kube-apiserver-arg", nil, "extra kube-apiserver flag, key=value (repeatable)")
	f.StringArrayVar(&cfg.ControllerManagerArgs, "kube-controller-manager-arg", nil, "extra kube-controller-manager flag, key=value (repeatable)")
	f.StringArrayVar(&cfg.SchedulerArgs, "kube-scheduler-arg", nil, "extra kube-scheduler flag, key=value (repeatable)")
	f.BoolVar(&cfg.DisableControllers, "disable-controller-manager", false, "do not run the controller manager")
	f.BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "do not run the scheduler")
	return cmd
}
