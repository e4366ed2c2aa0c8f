package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiffdev/skiff/internal/agent"
	"github.com/skiffdev/skiff/internal/progress"
)

func newImageCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Import, list and remove the images of this node (no registry needed)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultAgentDataDir(), "the agent's data dir (for the server's agent: SERVER_DATA_DIR/agent)")
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE.tar... | -",
		Short: "Import OCI or docker-archive tarballs (- reads one from standard input)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range args {
				refs, err := importWithProgress(cmd, dataDir, f)
				if err != nil {
					return err
				}
				for _, r := range refs {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", r)
				}
				if len(refs) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: every image in it was already there\n", f)
				}
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the node's images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := agent.ListImages(cmd.Context(), agent.ContainerdSocket(dataDir))
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "IMAGE\tDIGEST\tSIZE")
			for _, i := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\n", i.Ref, i.Digest, i.Size)
			}
			return w.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "rm IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove images from the node",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := agent.RemoveImages(cmd.Context(), agent.ContainerdSocket(dataDir), args); err != nil {
				return err
			}
			for _, r := range args {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			return nil
		},
	})
	return cmd
}

// importWithProgress imports the tarball f ("-": standard input), showing
// how much of it has been read on a terminal's standard error.
func importWithProgress(cmd *cobra.Command, dataDir, f string) ([]string, error) {
	in, size := cmd.InOrStdin(), int64(0)
	if f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil {
			size = st.Size()
		}
		in = file
	}
	bar := progress.New(cmd.ErrOrStderr(), "importing "+f, size)
	refs, err := agent.ImportImage(cmd.Context(), agent.ContainerdSocket(dataDir), "-", bar.Reader(in))
	bar.Done()
	return refs, err
}
