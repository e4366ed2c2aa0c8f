// Package apiserver holds the end-to-end tests of skiff's control plane
// (issue 4): they start the built `skiff server` binary and drive it the way
// users do, with the embedded and standalone kubectl versions, client-go and
// raw HTTPS, and check the answers Kubernetes gives, its durability across
// crashes and restarts, and its behaviour over an external etcd cluster.
//
// Tests that only read or add objects share one server (TestSharedServer);
// the crash and external-datastore tests start their own.
package apiserver
