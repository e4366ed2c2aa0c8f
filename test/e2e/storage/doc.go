// Package storage holds the end-to-end tests of skiff's built-in storage:
// the local-path provisioner (internal/controller/localpath) and the agent's
// storage directory. They start the built `skiff server` binary (SKIFF_BIN,
// or one built from this module) with its node agent on a t.TempDir() data
// directory and free ports, run real pods on it with client-go, and look at
// the node's disk. They need root (the agent runs containerd and mounts) and
// skiff's images in images/out (`make images`), and skip without them.
//
// Every test stops its server with SIGTERM and runs `skiff agent teardown`
// in a t.Cleanup, also when it fails.
package storage
