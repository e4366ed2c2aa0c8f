// Package mesh is skiff's service mesh node proxy: one per node, inside the
// node agent, in the spirit of Istio's ambient mode (ztunnel), with no
// sidecars and no change to pod specs.
//
// # What it owns
//
// Table `ip skiff-mesh` (the capture rules), the node's listening ports
// 15001 (outbound), 15006 (inbound plaintext), 15008 (tunnels) and 15020
// (/metrics), the workload keys of this node's enrolled pods (in memory
// only) and the CertificateSigningRequests it files for them. It does not
// own the mesh CA (internal/controller/meshca signs, in the server), pod
// networking (internal/agent/podnet), Services (kube-proxy) or
// NetworkPolicy (internal/agent/netpol).
//
// # Enrolment
//
// A pod is enrolled when it or its namespace is labelled
// mesh.skiff.dev/enabled=true (a pod labelled "false" stays out of an
// enrolled namespace), it has an address of its own and it runs. Enrolling
// and un-enrolling change only this node's capture set: no pod restarts,
// and an un-enrolled pod's new connections flow directly again.
//
// # Capture (why on the node, not in the pod)
//
//	table ip skiff-mesh
//	  set enrolled            this node's enrolled pod addresses
//	  chain prerouting        nat, priority dstnat - 10 (before kube-proxy)
//	    ip saddr @enrolled tcp  redirect to :15001   (the pod's outgoing)
//	    ip daddr @enrolled tcp  redirect to :15006   (to the pod, from outside the mesh)
//
// The rules sit in the node's own network namespace, on the prerouting
// hook that every packet from a pod's veth passes (same-node traffic
// crosses the bridge skiff0, whose IPv4 packets br_netfilter hands to the
// same hook), so they need no entry into pods' namespaces and survive a
// proxy restart: connections made while the proxy restarts are refused,
// never passed in plaintext. Running before kube-proxy's DNAT, the proxy
// sees the Service address the client dialled and balances over the
// Service's ready endpoints itself. The node's own connections (the
// proxy's, the kubelet's probes) leave through the output hook and are not
// captured, so probes keep working in strict mode. The proxy learns a
// redirected connection's original destination from conntrack
// (SO_ORIGINAL_DST).
//
// The cost of capturing on the node: a destination pod sees connections
// from its node's address instead of the client pod's, and NetworkPolicies
// see the node proxy as the peer; the mesh's AuthorizationPolicies, which
// see the client's verified identity, are the tool for such rules.
//
// # Identity
//
// Each service account with an enrolled pod on the node gets an X.509
// certificate whose only SAN is its SPIFFE ID,
// spiffe://CLUSTER-DOMAIN/ns/NS/sa/SA. The proxy makes the key, asks for a
// 10-minute service-account token bound to one of the account's pods on
// this node (the Node authorizer lets a node request only those), and
// files a CertificateSigningRequest for the signer mesh.skiff.dev/workload
// with the token; the mesh CA reviews the token, checks that the pod runs
// on the requesting node, and signs for 24 hours. Certificates are renewed
// at half their life; a request that fails is retried every 10 s, reported
// as a Warning event MeshCertificateFailed on the pod and counted in
// skiff_mesh_certificate_requests_total{result="error"}.
//
// # Tunnels
//
// A connection from an enrolled pod to an enrolled pod (directly or
// through a Service) travels as one stream of an HTTP/2 connection over
// TLS 1.3 between the two node proxies (Istio's HBONE): the source proxy
// dials the destination pod's node on 15008, presents the source
// workload's certificate, requires the destination workload's
// (the TLS server name SA.NS.sa.mesh.skiff names it), and sends
// `CONNECT POD-IP:PORT` with `Forwarded: for="CLIENT-IP"`. The destination
// proxy checks the client's certificate, that the target is an enrolled pod
// of its node with that identity, then connects to the pod. Tunnels are
// pooled per (source identity, destination node, destination identity).
// Traffic between enrolled pods of one node takes the same path.
//
// Connections to destinations outside the mesh go directly; connections
// into the mesh from outside it arrive on 15006.
//
// # Metrics
//
// On :15020/metrics, Istio's standard names and labels, from both ends
// (reporter="source" and "destination"): istio_tcp_connections_opened_total,
// istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total,
// istio_tcp_received_bytes_total; and skiff_mesh_* for certificates,
// enrolled pods and refusals.
package mesh
