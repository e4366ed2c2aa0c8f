// Package ingress is skiff's built-in Ingress and Gateway API controller: a
// reverse proxy on every node serving the networking.k8s.io/v1 Ingresses of
// IngressClass "skiff" and the Gateways of GatewayClasses whose
// controllerName is skiff.dev/gateway-controller (with their HTTPRoutes,
// GRPCRoutes, TLSRoutes, TCPRoutes and UDPRoutes),
// balancing straight to the pod addresses of EndpointSlices (no Service
// ClusterIP hop). It also carries out, for the service mesh, the
// HTTPRoutes and GRPCRoutes attached to Services (GAMMA).
//
// # Layout
//
// The design follows skiff's "deterministic core, thin shell" habit:
//
//	table.go, policy.go  Build: Ingresses, IngressClasses, Services,
//	                     EndpointSlices, TLS Secrets → *Table (pure)
//	gateway.go           Build's Gateway API part: listeners, HTTPRoutes,
//	                     GRPCRoutes (as HTTPRoutes), TLSRoutes,
//	                     ReferenceGrants → routes and statuses (pure)
//	tlsroute.go          TLS ports: the ClientHello read, connections sent
//	                     by SNI to TLSRoutes (passthrough or terminated)
//	                     or to the HTTPS server; TCP ports to TCPRoutes
//	udp.go               UDP ports: sessions per client to UDPRoutes
//	mesh.go              GAMMA: routes attached to Services, compiled
//	                     per Service port and served for the mesh
//	                     (MeshHandler) through its transport
//	gatewaystatus.go     Gateway API informers and status writes
//	listeners.go         one server per port the table serves
//	balance.go           balancers over endpoints (randomness injected)
//	health.go            passive outlier detection (clock injected)
//	proxy.go, cert.go    the http.Handler and its TLS configuration
//	upstream.go          HTTP/1.1 to endpoints for bodiless requests
//	metrics.go           Prometheus collectors
//	controller.go        the shell: informers, rebuild and swap, listeners,
//	                     Ingress status and Events
//
// A new Table is built in full after every change (debounced by 50 ms, and
// every 30 s regardless) and swapped in atomically; a request keeps the
// table it started with.
//
// # Which Ingresses
//
// An Ingress is served when spec.ingressClassName is "skiff"; when it
// names no class but carries the legacy annotation
// kubernetes.io/ingress.class: skiff; or when it names no class at all and
// the "skiff" IngressClass is annotated
// ingressclass.kubernetes.io/is-default-class: "true".
//
// # Matching
//
// Hosts match case-insensitively, without the Host header's port. A rule
// host is exact ("foo.com") or a wildcard ("*.foo.com", matching exactly
// one more label: bar.foo.com but neither foo.com nor baz.bar.foo.com); a
// rule without a host matches every host. A request is tried against the
// exact host's paths, then the wildcard's, then the host-less rules', and
// finally the default backend; the first path that matches wins. Nothing
// matching answers 404.
//
// Within a host the longest path wins, and on equal length Exact beats
// Prefix. Prefix matches whole "/"-separated elements (/foo matches /foo,
// /foo/ and /foo/bar, not /foobar) and ignores a trailing slash in the
// rule. ImplementationSpecific is treated as Prefix.
//
// When two Ingresses claim the same host, path and path type, the older
// (creationTimestamp, then namespace/name) wins and the other is reported
// in Table.Conflicts. Likewise the oldest Ingress's spec.defaultBackend is
// the one used.
//
// # Backends
//
// A backend names a Service port by number or name; its endpoints are the
// ready (or readiness-unknown), not terminating addresses of the Service's
// EndpointSlices (label kubernetes.io/service-name), at the target port of
// the slice port named like the Service port. A missing Service or port,
// or an ExternalName Service, keeps the route but answers 503 saying what
// is missing, and is reported in Table.Problems. Resource backends get no
// route and a Problem. A backend without a healthy endpoint answers 503
// "no healthy endpoint for service NS/NAME:PORT". Upstreams are spoken to
// over HTTP/1.1 (h2c for Services whose port says kubernetes.io/h2c):
// bodiless requests without an Upgrade on the handler's own goroutine over
// a pool of kept-alive connections (upstream.go), the others through
// net/http's Transport.
//
// # TLS
//
// Each host of an Ingress's spec.tls is served with the kubernetes.io/tls
// Secret it names (same namespace), chosen by SNI: exact host, then
// wildcard. A missing, invalid, expired or not-yet-valid certificate is
// reported, and the host gets the default certificate, a self-signed
// ECDSA P-256 one (CN skiff-ingress-default) made at start. TLS 1.2 is the
// minimum; h2 and http/1.1 are offered. Plain HTTP also accepts h2c.
//
// # Annotations
//
// Set on an Ingress, they apply to all its backends:
//
//	skiff.dev/load-balance         round-robin (default), least-connections,
//	                               least-request (power of two choices on
//	                               in-flight requests), random, consistent-hash
//	skiff.dev/hash-on              consistent-hash key: header:NAME, cookie:NAME
//	                               or client-ip (default); a request without
//	                               the key goes to a random endpoint
//	skiff.dev/session-affinity     "cookie": pin each client to an endpoint
//	                               with a cookie holding an opaque hash of the
//	                               endpoint; a client whose endpoint left or
//	                               was ejected is re-balanced and re-pinned
//	skiff.dev/session-cookie-name  the affinity cookie's name (default
//	                               skiff-affinity)
//	skiff.dev/ssl-redirect         "true"/"false": redirect plain HTTP to
//	                               HTTPS with a 308 (default: true for hosts
//	                               listed in some Ingress's spec.tls)
//	skiff.dev/proxy-read-timeout   how long to wait for an upstream's
//	                               response headers, a Go duration or
//	                               seconds (default 60s); 504 after it
//
// Invalid values are reported as Problems (reason InvalidAnnotation) and
// the default used.
//
// # Resilience
//
// A bodiless GET, HEAD or OPTIONS whose connect fails is retried once on
// another endpoint; an HTTPRoute rule's retry policy (Retry) replaces that
// rule, within the backend Service's retry budget when an
// XBackendTrafficPolicy's retryConstraint sets one (RetryBudget): a retry
// it refuses ends the request with 503. Five consecutive failures (5xx answers, failed connects, timeouts)
// eject an endpoint for 30 s times the number of ejections in a row, at
// most 5 minutes; when more of a backend's endpoints are ejected than are
// left, all of them are balanced over again (Envoy's panic threshold), so
// ejection never turns a backend's own errors into 503s. Errors are plain text naming what
// failed: 502 connect or upstream errors, 503 no endpoint, 504 timeout.
// The servers limit request headers to 64 KiB and their reading to 10 s,
// and close idle connections after 90 s.
//
// # Status and Events
//
// With Config.WriteStatus, the controller writes the node addresses (IPs)
// into status.loadBalancer.ingress of every served Ingress, and emits
// Warning Events for Problems and Conflicts (reasons BackendNotFound,
// Conflict, InvalidCertificate, UnsupportedBackend, InvalidAnnotation),
// once per distinct message per run. Exactly one node should have the
// job; the others only serve.
//
// # Not owned here
//
// The package is a plain API client: informers and status writes, never
// etcd. It is given its listen addresses; opening firewall or node ports
// and choosing which node writes status are the agent's business. It does
// not clear status of Ingresses it stops serving.
//
// # Gateway API
//
// Gateways of our classes are rendered with their listeners: HTTP and
// HTTPS on any port (a port speaks one protocol across every address; 80
// and 443 are the Ingress ports), each listener checked and given the
// specification's conditions. Without State.GatewayPool, Gateways share
// the nodes' addresses and their listeners are claimed per port and
// hostname, oldest Gateway first (HostnameConflict for the others). With
// a pool, each Gateway gets an address of it (see allocate) and is served
// on that address only: the proxy picks the table by the connection's
// local address. HTTPRoutes attach to listeners by parentRef (sectionName,
// port), allowedRoutes (namespaces, kinds) and hostname intersection;
// each match of each rule becomes a Route under each intersected hostname,
// ordered by the specification's precedence (Exact path, longest prefix,
// method, most headers, most query parameters, oldest route, rule order).
// Gateway API wildcards match one or more labels (Ingress ones exactly
// one). A rule's weighted backends are picked by smooth weighted round
// robin; a backendRef that does not resolve answers 500 for its share.
//
// # Service mesh (GAMMA)
//
// An HTTPRoute or GRPCRoute whose parentRef is a Service (group "" or
// "core", kind Service) applies to the requests enrolled pods send to
// that Service's cluster IP: the mesh's node proxy (internal/mesh) asks
// Controller.HasMeshRoutes for each connection to a Service port and
// serves its HTTP requests with Controller.MeshHandler. A parentRef with
// a port (or a sectionName, a port name) selects that port of the
// Service, one without every TCP port; the route's hostnames are ignored.
// A route in the Service's namespace is a producer route, applying to
// every client; one in another namespace is a consumer route
// (Route.ClientNamespace), applying only to the clients of its own
// namespace, and for them instead of the producer routes. Rules are
// carried out as on a Gateway (matches, filters, weighted backends,
// mirrors, timeouts, retries, balancing, passive outlier detection), a
// request no route matches gets 404, and requests go to the endpoints
// through the RoundTrippers the mesh gives for the client's identity
// (HTTP/1.1, or h2c for requests that came as HTTP/2 and for h2c
// backends), never through the proxy's own connections; they are left out of the
// skiff_ingress_* request metrics (the mesh counts them). Unlike on a
// Gateway, a backendRef to another namespace needs no ReferenceGrant:
// the request is made as the client, which could address that Service
// itself. Not carried out in the mesh: BackendTLSPolicies (500), TLSRoutes, TCPRoutes and UDPRoutes with
// Service parents (ignored, no status), and GEP-1294's precedence of
// GRPCRoutes over HTTPRoutes on one port (both apply, merged).
// Each Service parentRef gets a status.parents entry: Accepted, or
// NoMatchingParent when the Service is missing, has no cluster IP
// (headless, ExternalName) or lacks the port; and ResolvedRefs.
//
// Metrics: skiff_ingress_requests_total{kind,namespace,route,service,code},
// skiff_ingress_retries_total{namespace,service,outcome},
// skiff_ingress_request_duration_seconds{kind,namespace,route,service},
// skiff_ingress_requests_in_flight{kind,namespace,route,service},
// skiff_ingress_active_connections and
// skiff_ingress_endpoint_ejections_total{namespace,service}.
package ingress
