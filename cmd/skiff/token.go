package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/internal/server"
)

func newTokenCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and delete node join tokens (bootstrap tokens)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the server")
	client := func() (kubernetes.Interface, error) { return adminClient(dataDir, 0) }
	var ttl time.Duration
	var description string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a join token and print it (K10<CA hash>::<id>.<secret>, as DATA/token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: want 0 (never expires) or more", ttl)
			}
			c, err := client()
			if err != nil {
				return err
			}
			t, err := server.CreateToken(cmd.Context(), c, server.PathsIn(dataDir).CACert, ttl, description, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.String())
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (0: forever)")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the join tokens (their ids: the secrets are printed once, by create)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			tokens, err := server.ListTokens(cmd.Context(), c)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOKEN ID\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION")
			now := time.Now()
			for _, t := range tokens {
				ttl, expires := "<forever>", "<never>"
				if !t.Expires.IsZero() {
					expires = t.Expires.UTC().Format(time.RFC3339)
					if left := t.Expires.Sub(now); left > 0 {
						ttl = duration.ShortHumanDuration(left)
					} else {
						ttl = "<expired>"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, ttl, expires, strings.Join(t.Usages, ","), t.Description)
			}
			return w.Flush()
		},
	}
	del := &cobra.Command{
		Use:     "delete ID|TOKEN...",
		Aliases: []string{"rm"},
		Short:   "Delete join tokens: nodes can no longer join with them",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			for _, a := range args {
				id, err := server.DeleteToken(cmd.Context(), c, a)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "join token %s deleted\n", id)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}
