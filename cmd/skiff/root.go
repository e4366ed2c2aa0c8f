package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/version/verflag"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff: a lightweight Kubernetes in one binary",
		SilenceUsage:  true,
		SilenceErrors: false,
		// --version comes from component-base's global flags, as in
		// every Kubernetes binary.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			verflag.PrintAndExitIfRequested()
			setUpLogging(cmd)
		},
		Run: func(cmd *cobra.Command, _ []string) {
			verflag.PrintAndExitIfRequested()
			_ = cmd.Help()
		},
	}
	root.AddCommand(newServerCommand(), newAgentCommand())
	root.AddCommand(newSimCommand(), newKubectlCommand(), newSecretsEncryptCommand(), newEtcdSnapshotCommand(), newEtcdCommand(), newImageCommand(), newTokenCommand(), newCertificateCommand(), newCheckConfigCommand(), newDashboardCommand(), newFleetCommand(), newMeshCommand())
	registerLogFlags(root)
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
