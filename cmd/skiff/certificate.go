package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/agent"
	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/internal/server"
)

func newCertificateCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:     "certificate",
		Aliases: []string{"cert"},
		Short:   "List the server's certificates with their expiry, and rotate them",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the server")
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "List every certificate with its expiry date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The server's CA and leaves, the kubeconfigs' client
			// certificates, and its own node's kubelet's.
			p := server.PathsIn(dataDir)
			certs, err := pki.Inspect(p.TLSDir, p.EtcdTLSDir, p.Kubeconfig, agent.KubeletCertDir(p.Agent))
			if err != nil {
				return err
			}
			if len(certs) == 0 {
				return fmt.Errorf("no certificates in %s: is it a server's data dir?", dataDir)
			}
			now := time.Now()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CERTIFICATE\tSUBJECT\tEXPIRES\tRESIDUAL\tSTATUS")
			for _, c := range certs {
				left := c.NotAfter.Sub(now)
				status := "OK"
				switch {
				case left <= 0:
					status = "EXPIRED"
				case left < pki.RenewBefore:
					status = "EXPIRING"
				}
				subject := c.Subject
				if c.IsCA {
					subject += " (CA)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%dd\t%s\n", c.Path, subject, c.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24), status)
			}
			return w.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "With the server stopped, set its certificates aside so that its next start issues new ones",
		Long: "rotate moves the API server's serving and kubelet-client certificates and the admin, controller-manager " +
			"and scheduler kubeconfigs into DATA/tls/rotated-UNIXTIME; the next `skiff server` issues new ones from the " +
			"same CA, so nodes and join tokens stay valid. The kubelets renew their own certificates.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			moved, err := server.RotateCertificates(dataDir, time.Now())
			return reportSetAside(cmd, moved, err, "start skiff server to issue new certificates")
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate-ca",
		Short: "With the server stopped, replace the cluster CA with a new one cross-signed by the old",
		Long: "rotate-ca makes a new cluster CA (and, on an HA server, a new etcd CA), signed also by the old one, " +
			"keeps the old CA in the trust bundle DATA/tls/ca.crt and in DATA/tls/rotated-UNIXTIME, and sets the " +
			"certificates aside as rotate does: the next `skiff server` issues them from the new CA. Nodes, " +
			"kubeconfigs and join tokens made before keep working. On HA servers, run it on one, start it, then " +
			"restart the others one at a time: they take the new CA from the first.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			moved, err := server.RotateCA(dataDir, time.Now())
			return reportSetAside(cmd, moved, err, "new CA written; start skiff server to issue certificates from it")
		},
	})
	return cmd
}

// reportSetAside prints the files a rotation set aside, then its error or
// what to do next.
func reportSetAside(cmd *cobra.Command, moved []string, err error, next string) error {
	for _, m := range moved {
		fmt.Fprintf(cmd.OutOrStdout(), "set aside %s\n", m)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), next)
	return nil
}
