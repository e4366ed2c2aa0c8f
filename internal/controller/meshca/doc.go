// Package meshca is the service mesh's certificate authority: the signer
// mesh.skiff.dev/workload (SignerName) of Kubernetes
// CertificateSigningRequests, which issues workload certificates (SPIFFE
// X.509 SVIDs) to the node proxies (internal/mesh) for the pods on their
// node, and only for those.
//
// # The protocol
//
// A node proxy, with its node's credentials (user system:node:NODE, group
// system:nodes), obtains the certificate of an enrolled pod's service
// account NS/SA so:
//
//  1. it makes a key (ECDSA P-256) and an x509 certificate request whose
//     only subject alternative name is the URI SPIFFEID(trust domain, NS,
//     SA), spiffe://cluster.local/ns/NS/sa/SA; the subject is ignored;
//  2. it requests a token of the service account through the TokenRequest
//     API, audience Audience (mesh.skiff.dev), bound to the pod (a Pod
//     boundObjectRef with name and uid);
//  3. it creates a certificates.k8s.io/v1 CertificateSigningRequest with
//     spec.signerName SignerName, the usages digital signature, key
//     encipherment, client auth and server auth, an optional
//     spec.expirationSeconds, the token in the annotation TokenAnnotation,
//     and the labels NodeLabel, NamespaceLabel and ServiceAccountLabel
//     (for people and selectors; the signer trusts none of them);
//  4. it waits for status.certificate, the leaf followed by the mesh CA's
//     certificate (the last certificate is the trust anchor), or for a
//     Denied or Failed condition, whose message says what failed.
//
// # The decision
//
// The signer issues a certificate when, and only when, every one of these
// holds (the pure function decide, table-tested without a cluster):
//
//   - the requester (spec.username and spec.groups, which the API server
//     sets) is a node: system:node:NODE in the group system:nodes;
//   - the request is signed by its key, names exactly one URI SAN that
//     ParseSPIFFEID accepts in the configured trust domain and no other
//     SAN, has an ECDSA P-256 or P-384 key or an RSA key of 2048 bits or
//     more, and asks for no usage beyond those above;
//   - a TokenReview of the annotation's token, for the audience Audience,
//     authenticates it as system:serviceaccount:NS:SA, the SPIFFE ID's
//     service account, bound to a pod (the review's extra pod-name and
//     pod-uid);
//   - that pod exists in NS with that uid, runs as SA, is bound to NODE
//     (spec.nodeName) and has not terminated.
//
// So node authorization decides: a node gets keys only for the service
// accounts of pods that run on it, as the Node authorizer gives a node the
// Secrets of its pods only. A request that fails is Denied (reason
// MeshIdentityRefused, a message naming the check), with an Event
// MeshCertificateRefused on the pod when the pod is known; one approved by
// someone else that fails is marked Failed instead. One that passes is
// approved (reason MeshIdentityVerified, through the approval subresource)
// and signed: a leaf with the SPIFFE ID as its only SAN, valid from a
// minute ago for spec.expirationSeconds (at least ten minutes, at most and
// by default 24 hours, never past the CA's own expiry), usable for client
// and server authentication, not a CA.
//
// # The controller
//
// Controller watches the CertificateSigningRequests of SignerName (a field
// selector on spec.signerName) and reconciles them by name from a
// workqueue: a request that has a certificate, or a Denied or Failed
// condition, is left alone, so the controller may stop at any moment and
// the next reconcile finishes what was half done (an approved request
// without a certificate is verified again and signed). Errors of the API
// (the TokenReview, reading the pod, writing the request) are retried with
// back-off, never turned into a denial. The server runs it on every server,
// leader-elected (Lease kube-system/skiff-mesh-ca).
//
// Metrics: skiff_mesh_ca_certificates_issued_total,
// skiff_mesh_ca_certificates_refused_total{reason} (reason: requester,
// request, token or pod) and skiff_mesh_ca_certificate_sign_duration_seconds
// (from the reconcile's start to the certificate written).
//
// It does not own the mesh CA's files (internal/server keeps them under
// tls/mesh/ of the data dir and shares them between servers), the RBAC that
// lets nodes create the requests and the tokens (internal/server's
// bootstrap), the node proxies' keys or their renewal (internal/mesh), or
// the removal of old requests (the controller manager's CSR cleaner).
package meshca
