package ingress

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Outlier-detection defaults.
const (
	DefaultEjectAfter   = 5
	ejectionBase        = 30 * time.Second
	ejectionMaxDuration = 5 * time.Minute
)

// Health is passive outlier detection: it watches the outcome of proxied
// requests and ejects an endpoint after EjectAfter consecutive failures (a
// 5xx answer or a failed connect). An ejection lasts 30 s times the number
// of ejections in a row, at most 5 minutes; the count resets at the first
// success after the endpoint returns. Endpoints are keyed by address.
type Health struct {
	clock      clock.PassiveClock
	ejectAfter int

	mu  sync.Mutex // guards eps and down
	eps map[string]*outlier
	// down are the endpoints an active health check finds failing.
	down map[string]bool
}

type outlier struct {
	failures  int       // consecutive
	ejections int       // in a row, without a success between
	until     time.Time // ejected before this instant
}

// NewHealth returns a Health ejecting after ejectAfter failures (default 5
// when not positive), timed by clk.
func NewHealth(clk clock.PassiveClock, ejectAfter int) *Health {
	if ejectAfter <= 0 {
		ejectAfter = DefaultEjectAfter
	}
	return &Health{clock: clk, ejectAfter: ejectAfter, eps: map[string]*outlier{}, down: map[string]bool{}}
}

// Healthy tells whether addr may get requests now: neither failing its
// active check nor ejected.
func (h *Health) Healthy(addr string) bool {
	down, ejected := h.State(addr)
	return !down && !ejected
}

// State tells whether addr fails its active health check (down) and
// whether passive outlier detection has it ejected now.
func (h *Health) State(addr string) (down, ejected bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.eps[addr]
	return h.down[addr], o != nil && h.clock.Now().Before(o.until)
}

// SetActive records an active health check's verdict on addr.
func (h *Health) SetActive(addr string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if up {
		delete(h.down, addr)
	} else {
		h.down[addr] = true
	}
}

// Report records the outcome of one request to addr and tells whether it
// ejected the endpoint.
func (h *Health) Report(addr string, ok bool) (ejected bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.eps[addr]
	if ok {
		if o != nil && !h.clock.Now().Before(o.until) {
			delete(h.eps, addr)
		}
		return false
	}
	if o == nil {
		o = &outlier{}
		h.eps[addr] = o
	}
	now := h.clock.Now()
	if now.Before(o.until) {
		return false // already out; a straggler's failure
	}
	o.failures++
	if o.failures < h.ejectAfter {
		return false
	}
	o.failures = 0
	o.ejections++
	o.until = now.Add(min(ejectionBase*time.Duration(o.ejections), ejectionMaxDuration))
	return true
}

// Retain forgets every endpoint not in live, so departed pods do not
// accumulate.
func (h *Health) Retain(live []string) {
	keep := make(map[string]bool, len(live))
	for _, a := range live {
		keep[a] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for a := range h.eps {
		if !keep[a] {
			delete(h.eps, a)
		}
	}
	for a := range h.down {
		if !keep[a] {
			delete(h.down, a)
		}
	}
}
