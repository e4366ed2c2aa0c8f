package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/tools/cache"
)

// PhasesPath serves the number of pods in each phase, cluster-wide or in
// one namespace (?namespace=NS): the overview's figures. The API cannot
// count without listing (remainingItemCount is not given for a field
// selector), and 30,000 pods listed by every open page every few seconds
// would cost the API server more than everything else the page does; so
// each server keeps one cache of the pods reduced to their phase
// (StripToPhase: some 200 bytes a pod) and counts from it on request.
// Authorized as a list of pods there.
const PhasesPath = "/dashboard/api/v1/pods/phases"

// Phases is the reply: pods by phase, and their total.
type Phases struct {
	Total  int            `json:"total"`
	Phases map[string]int `json:"phases"`
}

// StripToPhase is the pod informer's transform: it keeps what counting
// and the cache need (name, namespace, uid, resourceVersion, phase).
func StripToPhase(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone: kept as it is
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Status:     corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}

// CountPhases counts the pods in pods (an informer's indexer with the
// namespace index), in namespace or, for "", everywhere.
func CountPhases(pods cache.Indexer, namespace string) (Phases, error) {
	var objs []any
	if namespace == "" {
		objs = pods.List()
	} else {
		var err error
		if objs, err = pods.ByIndex(cache.NamespaceIndex, namespace); err != nil {
			return Phases{}, err
		}
	}
	out := Phases{Phases: map[string]int{}}
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			phase := string(p.Status.Phase)
			if phase == "" {
				phase = string(corev1.PodPending)
			}
			out.Phases[phase]++
			out.Total++
		}
	}
	return out, nil
}

// PhasesHandler serves CountPhases of pods at PhasesPath; synced says
// whether the cache has been filled (503 until then).
func PhasesHandler(pods cache.Indexer, synced func() bool, authz Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		namespace := r.URL.Query().Get("namespace")
		if !authorized(w, r, authz, "", "pods", namespace) {
			return
		}
		if !synced() {
			writeStatus(w, apierrors.NewServiceUnavailable("the pod counts are still being read"))
			return
		}
		counts, err := CountPhases(pods, namespace)
		if err != nil {
			writeStatus(w, apierrors.NewInternalError(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(counts)
	})
}

// authorized checks a GET by the request's user for a list of resource in
// group, writing the API's error and returning false when it is refused.
func authorized(w http.ResponseWriter, r *http.Request, authz Authorizer, group, resource, namespace string) bool {
	gr := schema.GroupResource{Group: group, Resource: resource}
	if r.Method != http.MethodGet {
		writeStatus(w, apierrors.NewMethodNotSupported(gr, r.Method))
		return false
	}
	u, ok := request.UserFrom(r.Context())
	if !ok {
		writeStatus(w, apierrors.NewUnauthorized("Unauthorized"))
		return false
	}
	allowed, err := authz.Allowed(r.Context(), u, "list", group, resource, namespace)
	if err != nil {
		writeStatus(w, apierrors.NewInternalError(fmt.Errorf("authorizing %s: %w", r.URL.Path, err)))
		return false
	}
	if !allowed {
		scope := "at the cluster scope"
		if namespace != "" {
			scope = fmt.Sprintf("in the namespace %q", namespace)
		}
		writeStatus(w, apierrors.NewForbidden(gr, "",
			fmt.Errorf("User %q cannot list resource %q in API group %q %s", u.GetName(), resource, group, scope)))
		return false
	}
	return true
}
