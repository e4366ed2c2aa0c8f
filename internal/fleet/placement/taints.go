package placement

import (
	"math"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// verdict is what a cluster's taints say about placing on it.
type verdict struct {
	// untolerated is the key of the first taint that keeps the cluster
	// out; empty when the cluster may be used.
	untolerated string
	// noExecute is set when that taint is NoExecute, so that a copy
	// already on the cluster is evicted.
	noExecute bool
	// until, when positive, is how much longer every NoExecute taint
	// stays tolerated: the soonest end of a toleration.
	until time.Duration
}

// judgeTaints applies the taint rules of the package comment to one
// cluster. scheduled is whether the cluster is in the previous result.
func judgeTaints(taints []corev1.Taint, tols []corev1.Toleration, scheduled bool, now time.Time, defaultNotReady time.Duration) verdict {
	var v verdict
	for i := range taints {
		t := &taints[i]
		switch t.Effect {
		case corev1.TaintEffectNoSchedule:
			if !scheduled && !tolerated(tols, t) {
				return verdict{untolerated: t.Key}
			}
		case corev1.TaintEffectNoExecute:
			d, forever, ok := tolerationFor(tols, t, defaultNotReady)
			if !ok {
				return verdict{untolerated: t.Key, noExecute: true}
			}
			if forever {
				continue
			}
			added := now
			if t.TimeAdded != nil {
				added = t.TimeAdded.Time
			}
			left := added.Add(d).Sub(now)
			if left <= 0 {
				return verdict{untolerated: t.Key, noExecute: true}
			}
			if t.TimeAdded != nil && (v.until == 0 || left < v.until) {
				v.until = left
			}
		}
	}
	return v
}

// tolerated reports whether any toleration tolerates t.
func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(logr.Discard(), t, true) {
			return true
		}
	}
	return false
}

// tolerationFor returns how long the tolerations tolerate the NoExecute
// taint t from when it was added: for ever, for d (the smallest
// tolerationSeconds among the matching tolerations), or not at all (ok
// false). Not-ready and unreachable taints that no toleration matches get
// defaultNotReady. Seconds too large for a time.Duration count as for
// ever.
func tolerationFor(tols []corev1.Toleration, t *corev1.Taint, defaultNotReady time.Duration) (d time.Duration, forever, ok bool) {
	matched := false
	for i := range tols {
		tol := &tols[i]
		if !tol.ToleratesTaint(logr.Discard(), t, true) {
			continue
		}
		if tol.TolerationSeconds == nil || *tol.TolerationSeconds > math.MaxInt64/int64(time.Second) {
			return 0, true, true
		}
		s := max(time.Duration(*tol.TolerationSeconds)*time.Second, 0)
		if !matched || s < d {
			d = s
		}
		matched = true
	}
	if matched {
		return d, false, true
	}
	if t.Key == v1alpha1.TaintNotReady || t.Key == v1alpha1.TaintUnreachable {
		return defaultNotReady, false, true
	}
	return 0, false, false
}
