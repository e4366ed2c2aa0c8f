// Command skiff is a lightweight Kubernetes distribution in one binary.
package main

import (
	"os"

	"k8s.io/component-base/cli"
)

func main() {
	startCPUProfile()
	if len(os.Args) > 1 && os.Args[1] == "kubectl" {
		runKubectl(os.Args[2:])
	}
	os.Exit(cli.Run(newRootCommand()))
}
