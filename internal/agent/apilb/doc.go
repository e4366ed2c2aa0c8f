// Package apilb is a node's client-side load balancer over the cluster's API
// servers, as k3s's agent load balancer is: a TCP proxy on 127.0.0.1 that
// every kubeconfig of a standalone agent points at (the kubelet's,
// kube-proxy's, the agent's own clients), so that the node keeps working
// when the API server it was joined to (--server) goes away.
//
// # What it owns
//
// The listening socket, the connections through it and the list of
// servers, persisted in a file of the agent's data dir so that an agent
// restarted while its --server is down still reaches the others. It does
// not learn the servers itself: the agent watches the `kubernetes`
// Service's EndpointSlices (one endpoint per live API server) and calls
// SetServers. It does not terminate TLS: bytes pass through untouched, so
// clients verify the API server's certificate (which covers 127.0.0.1)
// and authenticate to it directly.
//
// # Shape
//
//	kubelet, kube-proxy, agent ──► 127.0.0.1:6444 (LB) ──► preferred server
//	                                                  └─► the others, in order
//
// Each accepted connection is dialled to the preferred server (the last
// one that accepted a connection; at first, the default server), then to
// the others in list order (the agent rotates the sorted list by a hash
// of the node's name, so nodes fail over to different servers), each with
// a short timeout; the first that answers becomes preferred. The list is
// the learned servers followed by the default server (--server), which is
// always kept as a fallback. When
// the list changes, connections to servers no longer in it are closed, so
// long-lived watches reconnect to a live server.
//
// dialOrder and serverList are the pure core; LB is the shell that owns
// the sockets and goroutines.
package apilb
