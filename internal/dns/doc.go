// Package dns is skiff's cluster DNS server: what CoreDNS with its kubernetes
// plugin is to other distributions, built into the skiff binary.
//
// It answers for the cluster domain (cluster.local by default) from
// client-go informer caches of Services and EndpointSlices, with the records
// the Kubernetes DNS specification defines
// (https://github.com/kubernetes/dns/blob/master/docs/specification.md) and
// CoreDNS's kubernetes plugin serves:
//
//	dns-version.cluster.local.                  TXT   "1.1.0"
//	svc.ns.svc.cluster.local.                   A     ClusterIP (AAAA for IPv6 ClusterIPs)
//	svc.ns.svc.cluster.local.                   A     one per ready endpoint (headless Service)
//	svc.ns.svc.cluster.local.                   CNAME external name (ExternalName Service)
//	host.svc.ns.svc.cluster.local.              A     endpoint address; host is the endpoint's
//	                                                  hostname, or its address with dashes
//	_port._proto.svc.ns.svc.cluster.local.      SRV   named ports; for headless Services one per
//	                                                  ready endpoint, targeting host.svc.ns...
//	1-2-3-4.ns.pod.cluster.local.               A     1.2.3.4 (CoreDNS's "pods insecure")
//	d.c.b.a.in-addr.arpa.                       PTR   ClusterIPs and endpoint addresses
//
// Unknown names in the cluster domain get NXDOMAIN, names that exist but hold
// no record of the asked type NODATA; both carry the zone's SOA in the
// authority section. Every record has the same short TTL (5 s). ExternalName
// targets are followed, as CoreDNS does, so stub resolvers that do not chase
// CNAMEs get addresses. Everything else, reverse names skiff does not know
// included, is forwarded to the upstream resolvers (by default those of the
// host's /etc/resolv.conf) over UDP, retried over TCP when truncated, through
// a small cache bounded in size that honours the answers' TTLs.
//
// The design follows skiff's "deterministic core, thin shell" habit. Build
// renders a Zone in full from the cached objects; Zone.Lookup is a pure
// function from a question to an answer. The Server (the shell) owns the
// informers, rebuilds the Zone after every change and swaps it in atomically,
// and owns the sockets, the forwarder and the clock.
//
// The package does not publish itself: the kube-dns Service and the
// EndpointSlice pointing at this server are written by internal/server.
// It serves no metrics, no zone transfers, no DNSSEC and no wildcard queries.
package dns
