// Package node holds the end-to-end tests of skiff's node agent (issue 6):
// the kubelet, the private containerd, CNI and kube-proxy as a user sees them
// through `skiff server`.
//
// TestMain starts one `skiff server` with its agent for the whole package
// (the binary is $SKIFF_BIN, or `make build`'s bin/skiff), on a data
// directory under /tmp, free ports and a node name of its own; every test
// works in a namespace of its own and checks what a user would look at: pod
// phase and conditions, container statuses, events, kubectl output, HTTP
// answers from pod and Service IPs. The resilience tests (containerd and the
// server killed) run first and alone; the rest run in parallel afterwards.
// When the package ends the server is killed and `skiff agent teardown`
// removes its containerd, containers and mounts before the data directory is
// deleted.
package node
