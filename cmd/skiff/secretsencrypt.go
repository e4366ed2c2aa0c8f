package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/server"
)

func newSecretsEncryptCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "secrets-encrypt",
		Short: "Show and rotate the keys that encrypt Secrets at rest",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the server")
	// client-go's default rate (5 per second) would take a minute per 300
	// Secrets; the API server's priority and fairness keeps the rewrite
	// from crowding out other clients.
	client := func() (kubernetes.Interface, error) { return adminClient(dataDir, 200) }
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Print whether Secrets are encrypted, the keys, and whether the API server has loaded them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := server.PathsIn(dataDir).EncryptionConfig
			s, data, err := secretsencrypt.Load(path)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(cmd.OutOrStdout(), "Encryption Status: Disabled (no configuration: the server runs with --secrets-encryption=false)")
				return nil
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			status := "Enabled"
			if !s.Enabled {
				status = "Disabled (new writes are plain text; the keys below still decrypt)"
			}
			fmt.Fprintf(out, "Encryption Status: %s\nCurrent Rotation Stage: %s\n", status, s.Stage())
			loaded := "the API server is not reachable"
			if c, err := client(); err == nil {
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				switch ok, _, err := secretsencrypt.Loaded(ctx, c, data); {
				case err != nil:
				case ok:
					loaded = "All hashes match"
				default:
					loaded = "the API server has not loaded this configuration yet (it rereads it every few seconds)"
				}
			}
			fmt.Fprintf(out, "Server Encryption Hashes: %s\n\n", loaded)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "Active\tKey Type\tName")
			fmt.Fprintln(w, "------\t--------\t----")
			for i, k := range s.Keys {
				active := ""
				if i == 0 && s.Enabled {
					active = " *"
				}
				fmt.Fprintf(w, "%s\tsecretbox\t%s\n", active, k.Name)
			}
			return w.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate-keys",
		Short: "Encrypt every Secret with a new key, without downtime, then drop the old key",
		Long: "rotate-keys adds a new key after the primary and waits for the API server (every server's, " +
			"on highly available servers) to load it, makes it the primary, rewrites every Secret " +
			"(re-encrypting it), and removes the old key. Interrupted, it leaves every Secret readable; run " +
			"it again to finish.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			r := secretsencrypt.Rotator{Path: server.PathsIn(dataDir).EncryptionConfig, Client: c, Out: cmd.OutOrStdout()}
			if server.PathsIn(dataDir).HA() {
				// Every server loads each step before the next.
				cfg, err := adminConfig(dataDir, 0)
				if err != nil {
					return err
				}
				if r.Servers, err = server.APIServerClients(cmd.Context(), cfg); err != nil {
					return err
				}
				r.Publish = func(ctx context.Context, data []byte) error { return server.PublishEncryptionConfig(ctx, c, data) }
			}
			return r.Rotate(cmd.Context())
		},
	})
	return cmd
}

// adminClient is a client with the admin kubeconfig of the server's data
// dir, allowed qps requests per second (0: client-go's default).
func adminClient(dataDir string, qps float32) (kubernetes.Interface, error) {
	cfg, err := adminConfig(dataDir, qps)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// adminConfig is adminClient's configuration.
func adminConfig(dataDir string, qps float32) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", server.PathsIn(dataDir).Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 30 * time.Second
	if qps > 0 {
		cfg.QPS, cfg.Burst = qps, int(qps)
	}
	return cfg, nil
}
