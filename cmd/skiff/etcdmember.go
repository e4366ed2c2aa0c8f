package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/internal/storage"
)

func newEtcdCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Manage the members of the embedded etcd cluster of highly available servers",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of a running server")
	member := &cobra.Command{Use: "member", Short: "List or remove the etcd cluster's members"}
	endpoint := func() (string, error) { return storage.EmbeddedEndpoint(server.PathsIn(dataDir).EtcdURL) }
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the members of the etcd cluster",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := endpoint()
			if err != nil {
				return err
			}
			members, err := storage.ListMembers(cmd.Context(), url)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tSTATUS\tPEER URLS\tCLIENT URLS")
			for _, m := range members {
				status, name := "started", m.Name
				switch {
				case m.Learner:
					status = "learner"
				case name == "":
					status, name = "unstarted", "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", strconv.FormatUint(m.ID, 16), name, status, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
			}
			return w.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Remove a member (a server that is gone for good) from the etcd cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url, err := endpoint()
			if err != nil {
				return err
			}
			id, err := storage.RemoveMember(cmd.Context(), url, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed etcd member %s (%s)\n", args[0], strconv.FormatUint(id, 16))
			return nil
		},
	}
	member.AddCommand(list, remove)
	cmd.AddCommand(member)
	return cmd
}
