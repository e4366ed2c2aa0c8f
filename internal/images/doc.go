// Package images assembles skiff's own container images and serves them to
// containerd without any external registry.
//
// No registry is reachable from the machines skiff targets, so the images a
// cluster needs are built from this repository: the pod sandbox's pause
// process, the testhost test workload (images/testhost) and a plain busybox.
//
//	localhost/skiff/pause     /pause                        entrypoint ["/pause"]
//	localhost/skiff/testhost  /testhost + busybox applets   entrypoint ["/testhost"], cmd ["netexec"]
//	localhost/skiff/busybox   busybox applets               cmd ["sh"]
//
// The package owns these:
//
//   - Build takes already compiled static binaries (it compiles nothing;
//     images/build does that for `make images`) and writes one OCI image
//     layout tarball per image, tagged "latest" and the given version.
//     `ctr -n k8s.io images import FILE.tar` and containerd's Go import API
//     accept them. The output is reproducible: the same binaries give the
//     same bytes, so manifest digests are stable.
//   - Mirror is a loopback, read-only OCI registry over a node's own image
//     store (containerd's content directory, and a list of the images to
//     serve). Configured as containerd's registry mirror for every host, it
//     lets the kubelet pull the node's imported images, skiff's among them,
//     so imagePullPolicy: Always works with no external registry.
//   - ArchiveRefs reads the image references a tarball names.
//
// It does not talk to containerd, pick image versions, or decide which
// images a node imports; the agent does.
package images
