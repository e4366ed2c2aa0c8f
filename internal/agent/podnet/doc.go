// Package podnet is the pod network of one node: the CNI configuration that
// containerd renders for the node's podCIDR (a bridge, host-local addresses,
// portmap), the routes to every other node's pods (host-gw: direct routes;
// VXLAN: an overlay), masquerading for traffic leaving the cluster, and the
// teardown of all of it.
//
// It owns the bridge skiff0, the device skiff.vxlan, the routes of protocol
// 0x53 and the nftables table `ip skiff`. It does not own pod addresses
// (the host-local IPAM of the CNI plugins), Services (kube-proxy) or
// NetworkPolicy (internal/agent/netpol).
package podnet
