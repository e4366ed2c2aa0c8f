// Command etcd is etcd's server, at the version skiff embeds, for the
// conformance suite's stand-in of registry.k8s.io/etcd (the sample API
// server's storage in the aggregator spec).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
