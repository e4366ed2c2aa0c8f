package main

import (
	"os"

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
		path := server.KubeconfigPath(defaultDataDir())
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
