package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
)

// UsagePrefix is where the usage history is served: inside the API
// server's handler chain, so only to authenticated users (an anonymous call
// gets 401), each query then authorized as a list of metrics.k8s.io's nodes
// or pods, the same permission `kubectl top` needs. GET
// UsagePrefix+"nodes"[?name=N] or UsagePrefix+"pods"[?namespace=NS][&name=N].
const UsagePrefix = "/dashboard/api/v1/usage/"

// metricsGroup is the API group the history's permission is checked in.
const metricsGroup = "metrics.k8s.io"

// Authorizer decides whether a user may do verb on a resource of group in
// namespace ("" for the cluster scope): the API server's authorizer, asked
// with a SubjectAccessReview.
type Authorizer interface {
	Allowed(ctx context.Context, u user.Info, verb, group, resource, namespace string) (bool, error)
}

// UsageHandler serves h at UsagePrefix, each request authorized with authz.
func UsageHandler(h *History, authz Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := strings.TrimPrefix(r.URL.Path, UsagePrefix)
		if kind != "nodes" && kind != "pods" {
			writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: metricsGroup, Resource: kind}, ""))
			return
		}
		q := r.URL.Query()
		namespace := ""
		if kind == "pods" {
			namespace = q.Get("namespace")
		}
		if !authorized(w, r, authz, metricsGroup, kind, namespace) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(h.Query(kind == "pods", namespace, q.Get("name")))
	})
}

// writeStatus writes err as the API server writes its errors: a
// metav1.Status with the matching code.
func writeStatus(w http.ResponseWriter, err apierrors.APIStatus) {
	s := err.Status()
	s.Kind, s.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(&s)
}
