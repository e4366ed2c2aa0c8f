package ingress

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
)

// TestRetryBudgetOf: a retryConstraint's fields, each defaulted on its
// own as the CRD defaults them.
func TestRetryBudgetOf(t *testing.T) {
	d := func(s string) *gwxv1a1.Duration { return ptr.To(gwxv1a1.Duration(s)) }
	for _, tt := range []struct {
		name string
		in   *gwxv1a1.RetryConstraint
		want RetryBudget
	}{
		{"none", nil, RetryBudget{}},
		{"empty", &gwxv1a1.RetryConstraint{}, DefaultRetryBudget},
		{"percent only", &gwxv1a1.RetryConstraint{Budget: &gwxv1a1.BudgetDetails{Percent: ptr.To(5)}},
			RetryBudget{Percent: 5, Interval: 10 * time.Second, MinCount: 10, MinInterval: time.Second}},
		{"all", &gwxv1a1.RetryConstraint{
			Budget:       &gwxv1a1.BudgetDetails{Percent: ptr.To(0), Interval: d("1m")},
			MinRetryRate: &gwxv1a1.RequestRate{Count: ptr.To(3), Interval: d("500ms")}},
			RetryBudget{Percent: 0, Interval: time.Minute, MinCount: 3, MinInterval: 500 * time.Millisecond}},
		{"out of range", &gwxv1a1.RetryConstraint{
			Budget:       &gwxv1a1.BudgetDetails{Percent: ptr.To(101), Interval: d("2h")},
			MinRetryRate: &gwxv1a1.RequestRate{Count: ptr.To(0), Interval: d("0s")}},
			DefaultRetryBudget},
	} {
		if got := retryBudgetOf(tt.in); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBudgetState: retries are allowed while they are under the percent
// of the window's requests (themselves among them), or under the minimum
// rate; the window forgets old requests.
func TestBudgetState(t *testing.T) {
	b := RetryBudget{Percent: 20, Interval: 10 * time.Second, MinCount: 1, MinInterval: time.Second}
	now := time.Unix(1000, 0)
	var s budgetState
	for range 80 {
		s.request(b, now)
	}
	allowed := 0
	for range 100 {
		if s.retry(b, now) {
			allowed++
		}
	}
	// r retries are allowed while r < 20% of (80 + r): 20 of them.
	if allowed != 20 {
		t.Errorf("80 requests at 20%%: %d retries allowed, want 20", allowed)
	}
	// Eleven seconds on, the requests are forgotten: the minimum rate
	// alone allows one retry a second.
	now = now.Add(11 * time.Second)
	if !s.retry(b, now) || s.retry(b, now) {
		t.Error("with no recent requests: want exactly one retry (the minimum rate)")
	}
	now = now.Add(1100 * time.Millisecond)
	if !s.retry(b, now) {
		t.Error("a second later: want the minimum rate's retry again")
	}
	// A budget with other windows starts over.
	b2 := RetryBudget{Percent: 50, Interval: time.Second, MinCount: 1, MinInterval: time.Hour}
	s.request(b2, now)
	s.request(b2, now)
	if !s.retry(b2, now) || !s.retry(b2, now) || s.retry(b2, now) {
		t.Error("2 requests at 50%, then the minimum: want two retries, then none")
	}
}

// TestGatewayRetryBudget: retries stop once the Service's retry budget,
// from its XBackendTrafficPolicy's retryConstraint, is spent: the request
// then gets 503, and both outcomes are counted; another Service, with no
// policy, has no budget: its rules' attempts alone bound the retries.
func TestGatewayRetryBudget(t *testing.T) {
	f := newFixture(t, ProxyConfig{})
	var hits atomic.Int64
	failing := upstream(t, "failing", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	route := func(name, svc string) *gwv1.HTTPRoute {
		r := makeRoute("ns", name).parent("", "gw", "").hosts(name+".test").rule(prefixMatch("/"), []string{svc}).obj()
		r.Spec.Rules[0].Retry = &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{500}, Attempts: ptr.To(1), Backoff: ptr.To(gwv1.Duration("1ms"))}
		return r
	}
	in := gatewayState(
		[]*gwv1.Gateway{makeGateway("ns", "gw").listener("http", gwv1.HTTPProtocolType, 80, "").obj()},
		[]*gwv1.HTTPRoute{route("budget", "svc-a"), route("default", "svc-b")})
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", failing), sliceFor("ns", "svc-b", failing))
	// No share of the requests: the minimum rate alone, 2 an hour.
	in.BackendTrafficPolicies = []*gwxv1a1.XBackendTrafficPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "budget", CreationTimestamp: metav1.NewTime(epoch)},
		Spec: gwxv1a1.BackendTrafficPolicySpec{
			TargetRefs: []gwxv1a1.LocalPolicyTargetReference{{Group: "", Kind: "Service", Name: "svc-a"}},
			RetryConstraint: &gwxv1a1.RetryConstraint{
				Budget:       &gwxv1a1.BudgetDetails{Percent: ptr.To(0)},
				MinRetryRate: &gwxv1a1.RequestRate{Count: ptr.To(2), Interval: ptr.To(gwxv1a1.Duration("1h"))},
			},
		},
	}}
	f.p.SetTable(Build(in))

	for i, want := range []int{500, 500, 503, 503} {
		before := hits.Load()
		resp, body := f.get(t, "budget.test", "/")
		tries := hits.Load() - before
		if resp.StatusCode != want || want == 500 && tries != 2 || want == 503 && (tries != 1 || !strings.HasPrefix(body, "retry budget exhausted")) {
			t.Errorf("request %d: %d %q after %d tries, want %d (%d tries)", i, resp.StatusCode, body, tries, want, map[int]int{500: 2, 503: 1}[want])
		}
	}
	// Retries only: beyond the Gateway API's default budget (20 %, at
	// least 10 a second), which applies to policies only.
	for i := range 15 {
		before := hits.Load()
		if resp, _ := f.get(t, "default.test", "/"); resp.StatusCode != 500 || hits.Load()-before != 2 {
			t.Errorf("no budget, request %d: %d after %d tries, want 500 after 2", i, resp.StatusCode, hits.Load()-before)
		}
	}
	for _, tt := range []struct {
		svc, outcome string
		want         float64
	}{{"svc-a", "sent", 2}, {"svc-a", "budget_exhausted", 2}, {"svc-b", "sent", 15}} {
		if got := testutil.ToFloat64(f.p.metrics.retries.WithLabelValues("ns", tt.svc, tt.outcome)); got != tt.want {
			t.Errorf("skiff_ingress_retries_total{service=%s,outcome=%s} = %v, want %v", tt.svc, tt.outcome, got, tt.want)
		}
	}
}
