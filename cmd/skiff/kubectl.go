package main

import (
	"os"

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // client auth plugins, as kubectl has them
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	"github.com/skiffdev/skiff/internal/server"
)

// runKubectl is `skiff kubectl ARGS`: the real kubectl, with kubectl's own
// argument handling, output and exit codes. Without KUBECONFIG or
// --kubeconfig it uses the local server's admin kubeconfig, as k3s does.
func runKubectl(args []string) {
	if os.Getenv("KUBECONFIG") == "" && !hasFlag(args, "kubeconfig") {
		path := server.PathsIn(defaultDataDir()).Kubeconfig
		if _, err := os.Stat(path); err == nil {
			os.Setenv("KUBECONFIG", path)
		}
	}
	os.Args = append([]string{"kubectl"}, args...)
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || len(a) > len(name)+3 && a[:len(name)+3] == "--"+name+"=" {
			return true
		}
	}
	return false
}

// newKubectlCommand lists kubectl in skiff's help. main runs `skiff kubectl`
// before cobra sees it, so kubectl parses its own flags and prints its own
// help; this command is reached only through `skiff help kubectl`.
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [flags] COMMAND",
		Short:              "Run kubectl (the real one, embedded) against this machine's server by default",
		DisableFlagParsing: true,
		Run:                func(_ *cobra.Command, args []string) { runKubectl(args) },
	}
}
