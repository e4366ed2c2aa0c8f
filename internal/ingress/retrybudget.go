package ingress

import (
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
)

// RetryBudget bounds the retries an HTTPRoute's retry policy sends to one
// backend Service, so that retries cannot multiply a failing backend's
// load (a retry storm): over the last Interval at most Percent percent of
// the requests sent to it may be retries, and MinCount retries per
// MinInterval are always allowed, for quiet times. It is the Gateway
// API's retryConstraint of an XBackendTrafficPolicy (GEP-3388); the zero
// RetryBudget, of a Service no policy constrains, bounds nothing (the
// rules' attempts alone do, as the Gateway API's conformance suite
// expects).
type RetryBudget struct {
	Percent     int
	Interval    time.Duration
	MinCount    int
	MinInterval time.Duration
}

// DefaultRetryBudget is the Gateway API's defaults of a retryConstraint's
// fields (Linkerd's default budget too): 20 % of the last 10 s's
// requests, and at least 10 retries a second.
var DefaultRetryBudget = RetryBudget{Percent: 20, Interval: 10 * time.Second, MinCount: 10, MinInterval: time.Second}

func (b RetryBudget) String() string {
	return fmt.Sprintf("%d%%/%v min %d/%v", b.Percent, b.Interval, b.MinCount, b.MinInterval)
}

// retryBudgetOf is the budget constraint c asks for, its unset fields
// (and values out of the CRD's ranges) at their defaults; none (the zero
// RetryBudget) when c is nil.
func retryBudgetOf(c *gwxv1a1.RetryConstraint) RetryBudget {
	if c == nil {
		return RetryBudget{}
	}
	b := DefaultRetryBudget
	if c.Budget != nil {
		if p := c.Budget.Percent; p != nil && *p >= 0 && *p <= 100 {
			b.Percent = *p
		}
		if d, ok := durationIn(c.Budget.Interval, time.Second, time.Hour); ok {
			b.Interval = d
		}
	}
	if c.MinRetryRate != nil {
		if n := c.MinRetryRate.Count; n != nil && *n >= 1 {
			b.MinCount = *n
		}
		if d, ok := durationIn(c.MinRetryRate.Interval, time.Nanosecond, time.Hour); ok {
			b.MinInterval = d
		}
	}
	return b
}

// durationIn parses d when it is set and within [lo, hi].
func durationIn(d *gwxv1a1.Duration, lo, hi time.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	v, err := time.ParseDuration(string(*d))
	return v, err == nil && v >= lo && v <= hi
}

// retryBudget is the budget of Service ns/name's retries: the retry
// constraint of the XBackendTrafficPolicy that targets it, else none.
func (bp *backendPolicies) retryBudget(ns, name string) RetryBudget {
	p := bp.byService[types.NamespacedName{Namespace: ns, Name: name}]
	if p == nil {
		return RetryBudget{}
	}
	return retryBudgetOf(p.Spec.RetryConstraint)
}

// budgetBuckets is how many buckets a window is counted in: a count
// forgets in steps of a tenth of its window.
const budgetBuckets = 10

// slidingCount counts events over a window of budgetBuckets buckets.
type slidingCount struct {
	width  time.Duration // a bucket's span
	ids    [budgetBuckets]int64
	counts [budgetBuckets]int64
}

// reset empties c and gives it window.
func (c *slidingCount) reset(window time.Duration) {
	*c = slidingCount{width: max(window/budgetBuckets, 1)}
}

func (c *slidingCount) bucket(now time.Time) int64 { return now.UnixNano() / int64(c.width) }

func (c *slidingCount) add(now time.Time) {
	id := c.bucket(now)
	i := id % budgetBuckets
	if c.ids[i] != id {
		c.ids[i], c.counts[i] = id, 0
	}
	c.counts[i]++
}

// sum is the count of the last window.
func (c *slidingCount) sum(now time.Time) int64 {
	id := c.bucket(now)
	var n int64
	for i, b := range c.ids {
		if b > id-budgetBuckets && b <= id {
			n += c.counts[i]
		}
	}
	return n
}

// budgetState is one Service's recent requests and retries.
type budgetState struct {
	mu        sync.Mutex
	of        RetryBudget // the budget the windows are for
	requests  slidingCount
	retries   slidingCount // over of.Interval
	recentMin slidingCount // retries over of.MinInterval
}

// sync makes s count for b, starting over when b's windows differ.
func (s *budgetState) sync(b RetryBudget) {
	if s.of.Interval != b.Interval || s.of.MinInterval != b.MinInterval {
		s.requests.reset(b.Interval)
		s.retries.reset(b.Interval)
		s.recentMin.reset(b.MinInterval)
	}
	s.of = b
}

// request records a request sent to the Service.
func (s *budgetState) request(b RetryBudget, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync(b)
	s.requests.add(now)
}

// retry tells whether b allows one more retry now, and records it if so.
// Retries count among the requests, as the Gateway API has it.
func (s *budgetState) retry(b RetryBudget, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync(b)
	ok := s.retries.sum(now)*100 < int64(b.Percent)*s.requests.sum(now) ||
		s.recentMin.sum(now) < int64(b.MinCount)
	if ok {
		s.retries.add(now)
		s.recentMin.add(now)
		s.requests.add(now)
	}
	return ok
}

// budgetOf is the retry budget state of be's Service.
func (p *Proxy) budgetOf(be *Backend) *budgetState {
	key := types.NamespacedName{Namespace: be.Namespace, Name: be.Service}
	if s, ok := p.budgets.Load(key); ok {
		return s.(*budgetState)
	}
	s, _ := p.budgets.LoadOrStore(key, &budgetState{})
	return s.(*budgetState)
}
