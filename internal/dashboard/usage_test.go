package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/request"
)

var t0 = time.Unix(1_800_000_000, 0)

func at(i int) time.Time { return t0.Add(time.Duration(i) * UsageInterval) }

func values(v []*float64) []any {
	out := make([]any, len(v))
	for i, x := range v {
		if x != nil {
			out[i] = *x
		}
	}
	return out
}

func TestHistoryRecordsAndForgets(t *testing.T) {
	h := NewHistory()
	h.Record(at(0), map[string]Usage{"n1": {CPU: 0.25, Memory: 512 << 20}}, map[string]Usage{"a/p": {CPU: 0.0015, Memory: 10 << 20}})
	// A pod with no figures at a sample has none there (pending), not zero.
	h.Record(at(1), map[string]Usage{"n1": {CPU: 0.5, Memory: 512 << 20}}, map[string]Usage{"b/q": {CPU: 1, Memory: 1 << 30}})

	nodes := h.Query(false, "", "")
	if len(nodes.Times) != 2 || nodes.Times[0] != at(0).Unix() || nodes.Times[1] != at(1).Unix() {
		t.Fatalf("times %v", nodes.Times)
	}
	if len(nodes.Series) != 1 || nodes.Series[0].Name != "n1" || *nodes.Series[0].CPU[1] != 0.5 || *nodes.Series[0].Memory[0] != 512<<20 {
		t.Fatalf("nodes %+v", nodes.Series)
	}
	pods := h.Query(true, "", "")
	if len(pods.Series) != 2 {
		t.Fatalf("pods %+v", pods.Series)
	}
	a, b := pods.Series[0], pods.Series[1]
	if a.Namespace != "a" || a.Name != "p" || *a.CPU[0] != 0.002 || a.CPU[1] != nil || a.Memory[1] != nil {
		t.Errorf("a/p: cpu %v memory %v (millicores rounded; no value at the second sample)", values(a.CPU), values(a.Memory))
	}
	if b.CPU[0] != nil || *b.CPU[1] != 1 || *b.Memory[1] != 1<<30 {
		t.Errorf("b/q: cpu %v memory %v (no value before it appeared)", values(b.CPU), values(b.Memory))
	}
	if got := h.Query(true, "b", ""); len(got.Series) != 1 || got.Series[0].Name != "q" {
		t.Errorf("namespace b: %+v", got.Series)
	}
	if got := h.Query(true, "", "p"); len(got.Series) != 1 || got.Series[0].Namespace != "a" {
		t.Errorf("name p: %+v", got.Series)
	}

	// An hour on, the window has moved: usageSlots samples, and a/p, gone
	// for a whole hour, is forgotten.
	for i := 2; i < usageSlots+2; i++ {
		h.Record(at(i), map[string]Usage{"n1": {CPU: 1}}, map[string]Usage{"b/q": {CPU: 1}})
	}
	pods = h.Query(true, "", "")
	if len(pods.Times) != usageSlots || pods.Times[0] != at(2).Unix() || pods.Times[usageSlots-1] != at(usageSlots+1).Unix() {
		t.Errorf("times after an hour: %d from %d", len(pods.Times), pods.Times[0])
	}
	if len(pods.Series) != 1 || pods.Series[0].Name != "q" {
		t.Errorf("after an hour: %+v", pods.Series)
	}
}

func TestHistoryBound(t *testing.T) {
	h := NewHistory()
	pods := map[string]Usage{}
	for i := range maxPodSeries + 5 {
		pods[fmt.Sprintf("ns/p%d", i)] = Usage{CPU: 0.1}
	}
	h.Record(t0, nil, pods)
	got := h.Query(true, "", "")
	if len(got.Series) != maxPodSeries || got.UntrackedPods != 5 {
		t.Errorf("%d pods followed, %d untracked; want %d and 5", len(got.Series), got.UntrackedPods, maxPodSeries)
	}
}

type fakeAuthz map[string]bool // "user verb group/resource namespace" → allowed

func (f fakeAuthz) Allowed(_ context.Context, u user.Info, verb, group, resource, namespace string) (bool, error) {
	return f[u.GetName()+" "+verb+" "+group+"/"+resource+" "+namespace], nil
}

func TestUsageHandler(t *testing.T) {
	h := NewHistory()
	h.Record(t0, map[string]Usage{"n1": {CPU: 1}}, map[string]Usage{"team/web": {CPU: 0.5}, "other/db": {CPU: 2}})
	handler := UsageHandler(h, fakeAuthz{"alice list metrics.k8s.io/pods team": true, "root list metrics.k8s.io/nodes ": true})
	call := func(who, path string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if who != "" {
			r = r.WithContext(request.WithUser(r.Context(), &user.DefaultInfo{Name: who}))
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := call("alice", UsagePrefix+"pods?namespace=team"); code != http.StatusOK || !strings.Contains(body, `"name":"web"`) || strings.Contains(body, "db") {
		t.Errorf("alice, pods in team: %d %s", code, body)
	}
	code, body := call("alice", UsagePrefix+"pods?namespace=other")
	var status struct{ Kind, Message string }
	_ = json.Unmarshal([]byte(body), &status)
	if code != http.StatusForbidden || status.Kind != "Status" ||
		status.Message != `pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "other"` {
		t.Errorf("alice, pods in other: %d %s", code, body)
	}
	if code, body := call("alice", UsagePrefix+"nodes"); code != http.StatusForbidden || !strings.Contains(body, "at the cluster scope") {
		t.Errorf("alice, nodes: %d %s", code, body)
	}
	if code, body := call("root", UsagePrefix+"nodes?name=n1"); code != http.StatusOK || !strings.Contains(body, `"name":"n1"`) {
		t.Errorf("root, nodes: %d %s", code, body)
	}
	if code, _ := call("", UsagePrefix+"nodes"); code != http.StatusUnauthorized {
		t.Errorf("no user: %d, want 401", code)
	}
	if code, _ := call("root", UsagePrefix+"secrets"); code != http.StatusNotFound {
		t.Errorf("unknown kind: %d, want 404", code)
	}
}
