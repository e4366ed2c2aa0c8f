package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff: a lightweight Kubernetes in one binary",
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version.Get().GitVersion,
	}
	root.AddCommand(newServerCommand(), newAgentCommand())
	root.AddCommand(newSimCommand())
	return root
}

// defaultDataDir is /var/lib/skiff for root and ~/.skiff otherwise.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/skiff"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".skiff"
	}
	return fmt.Sprintf("%s/.skiff", home)
}
