// Package netpol enforces Kubernetes NetworkPolicies (networking.k8s.io/v1)
// for the pods of one node, in nftables table `inet skiff-netpol`.
//
// # What it owns
//
// The table and everything in it. The agent runs one Controller per node
// (internal/agent, runNetworkPolicy); `skiff agent teardown` deletes the
// table. It does not own the pod network (routes, masquerading:
// internal/agent/network.go), Services (kube-proxy) or the pods' addresses
// (the CNI bridge skiff0).
//
// # Shape
//
// The core is pure: Render maps (node name, NetworkPolicies, Pods,
// Namespaces) to the complete list of knftables objects for the node, and
// is tested with golden files under testdata/. The Controller is the thin
// shell: informers on the three kinds, and on every change (and every
// resync period) it renders the whole rule set again and applies it as one
// nftables transaction that flushes what the table held and adds the new
// contents, deleting chains and sets that are no longer rendered. A packet
// sees the old rule set or the new one, never a mixture; a restarted agent
// repairs whatever was there.
//
//	table inet skiff-netpol
//	  chain forward  (hook forward, priority filter, policy accept)
//	    ct state established,related accept
//	    ip saddr vmap @isolated-egress    pod IP -> jump pod-egress/IP
//	    ip daddr vmap @isolated-ingress   pod IP -> jump pod-ingress/IP
//	  chain input    (hook input, priority filter, policy accept)
//	    ct state established,related accept
//	    ip saddr vmap @isolated-egress    (a pod talking to its own node)
//	  chain pod-ingress/IP   one per ingress-isolated pod of this node:
//	    <peer> <ports> return   one rule per allowed (peer, protocol) pair
//	    drop
//	  chain pod-egress/IP    the same for egress-isolated pods
//	  set peers/NS/POLICY/{ingress,egress}/N   the pod IPs a rule's
//	    podSelector / namespaceSelector peers select (cluster-wide)
//
// Allowed traffic returns from the pod chain instead of accepting, so a
// packet between two isolated pods of the same node passes the sender's
// egress chain and then the receiver's ingress chain. Pod-to-pod traffic on
// one node crosses the bridge; with br_netfilter (net.bridge.
// bridge-nf-call-iptables=1, the default once the module is in) bridged IPv4
// passes the inet forward hook too, so the same chains see it.
//
// Traffic the node itself originates (kubelet probes, from the node's
// addresses or the bridge gateway) leaves through the output hook, which the
// table does not hook: it always reaches the pods, as upstream
// implementations allow. Its replies pass the first rule of input.
//
// # Semantics
//
// Exactly those of NetworkPolicy: a pod is isolated for ingress (egress) iff
// a policy in its namespace selects it and lists Ingress (Egress) in
// policyTypes (defaulted as the API server does when empty); an isolated
// pod's allowed traffic is the union of the selecting policies' rules.
// Peers: podSelector (the policy's namespace), namespaceSelector, both
// (AND), ipBlock with except (applied literally to addresses). Ports: by
// number, by name (resolved against the destination pod's container ports
// for ingress, the peer pods' for egress), endPort ranges, TCP/UDP/SCTP; a
// rule without ports allows every protocol. Empty from/to allows every peer;
// an empty rule list denies everything. Peers are pods with an IPv4 address
// that are not hostNetwork and not finished (Succeeded/Failed).
//
// It does not filter IPv6 (the cluster network is IPv4), and it drops
// rather than rejects, as upstream plugins do.
package netpol
