package dashboard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/tools/cache"
)

func pod(ns, name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"big": "label"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status:     corev1.PodStatus{Phase: phase, PodIP: "10.0.0.1"},
	}
}

func TestPhases(t *testing.T) {
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range []*corev1.Pod{
		pod("a", "1", corev1.PodRunning), pod("a", "2", corev1.PodRunning), pod("a", "3", corev1.PodPending),
		pod("b", "1", corev1.PodSucceeded), pod("b", "2", ""), // not yet given a phase: Pending
	} {
		stripped, _ := StripToPhase(p)
		if s := stripped.(*corev1.Pod); len(s.Labels) != 0 || s.Spec.NodeName != "" || s.Status.PodIP != "" || s.Status.Phase != p.Status.Phase {
			t.Fatalf("StripToPhase kept more than the phase: %+v", s)
		}
		if err := pods.Add(stripped); err != nil {
			t.Fatal(err)
		}
	}
	handler := PhasesHandler(pods, func() bool { return true }, fakeAuthz{"root list /pods ": true, "alice list /pods b": true})
	call := func(who, query string) (int, Phases) {
		r := httptest.NewRequest(http.MethodGet, PhasesPath+query, nil)
		r = r.WithContext(request.WithUser(r.Context(), &user.DefaultInfo{Name: who}))
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		var p Phases
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		return w.Code, p
	}
	if code, p := call("root", ""); code != http.StatusOK || p.Total != 5 || p.Phases["Running"] != 2 || p.Phases["Pending"] != 2 || p.Phases["Succeeded"] != 1 {
		t.Errorf("root, every namespace: %d %+v", code, p)
	}
	if code, p := call("alice", "?namespace=b"); code != http.StatusOK || p.Total != 2 || p.Phases["Pending"] != 1 {
		t.Errorf("alice, namespace b: %d %+v", code, p)
	}
	if code, _ := call("alice", ""); code != http.StatusForbidden {
		t.Errorf("alice, every namespace: %d, want 403", code)
	}
	unsynced := PhasesHandler(pods, func() bool { return false }, fakeAuthz{"root list /pods ": true})
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, PhasesPath, nil)
	unsynced.ServeHTTP(w, r.WithContext(request.WithUser(r.Context(), &user.DefaultInfo{Name: "root"})))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("before the cache is filled: %d, want 503", w.Code)
	}
}
