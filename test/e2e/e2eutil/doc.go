// Package e2eutil is what skiff's end-to-end tests share: it builds or finds
// the skiff binary (SKIFF_BIN), starts `skiff server` as a subprocess on a
// free loopback port and a data directory under t.TempDir(), waits for it to
// be ready, stops it with SIGTERM or SIGKILL, runs kubectl (the embedded
// `skiff kubectl` and the standalone versions found on the machine) with its
// output captured, and starts throwaway etcd clusters from /usr/bin/etcd.
//
// Every process it starts is killed in a t.Cleanup, also when a test fails.
// It owns no assertions about Kubernetes behaviour; the test packages do.
package e2eutil
