package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/internal/storage"
)

func newEtcdSnapshotCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "etcd-snapshot",
		Short: "Save, list, delete and prune snapshots of the embedded etcd (restore: skiff server --cluster-reset --cluster-reset-restore-path FILE)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the server")
	var name string
	save := &cobra.Command{
		Use:   "save",
		Short: "Snapshot the running server's etcd into DATA/snapshots/NAME-NODE-UNIXTIME",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths := server.PathsIn(dataDir)
			url, err := storage.EmbeddedEndpoint(paths.EtcdURL)
			if err != nil {
				return err
			}
			snap, err := server.SaveSnapshot(cmd.Context(), paths, []string{url}, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s saved (%d bytes)\n", snap.Path, snap.Size)
			return nil
		},
	}
	save.Flags().StringVar(&name, "name", "on-demand", "name of the snapshot, followed by the node's name and the time")
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the snapshots, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := storage.ListSnapshots(server.PathsIn(dataDir).Snapshots)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "Name\tLocation\tSize\tCreated")
			for _, s := range list {
				fmt.Fprintf(w, "%s\tfile://%s\t%d\t%s\n", s.Name, s.Path, s.Size, s.Created.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	del := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete snapshots by the names `ls` prints",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range args {
				if err := storage.DeleteSnapshot(server.PathsIn(dataDir).Snapshots, n); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s deleted\n", n)
			}
			return nil
		},
	}
	var retention int
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Delete the oldest snapshots of --name beyond --snapshot-retention",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if retention < 1 {
				return fmt.Errorf("--snapshot-retention %d: keep at least one", retention)
			}
			deleted, err := server.PruneSnapshots(server.PathsIn(dataDir), name, retention)
			for _, n := range deleted {
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s deleted\n", n)
			}
			return err
		},
	}
	prune.Flags().StringVar(&name, "name", "on-demand", "name of the snapshots to prune (scheduled ones: "+server.ScheduledSnapshotName+")")
	prune.Flags().IntVar(&retention, "snapshot-retention", 5, "how many of the newest to keep")
	cmd.AddCommand(save, ls, del, prune)
	return cmd
}
