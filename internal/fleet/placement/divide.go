package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// divide shares replicas among cands by the strategy rs and returns each
// candidate's share, in cands' order. A non-empty reason says why the
// replicas do not fit.
func divide(rs *v1alpha1.ReplicaSchedulingStrategy, replicas int32, cands []candidate, rebalance bool) (shares []int64, reason string) {
	if rs == nil || rs.ReplicaSchedulingType == v1alpha1.Duplicated {
		shares = make([]int64, len(cands))
		for i := range shares {
			shares[i] = int64(replicas)
		}
		return shares, ""
	}
	byCapacity := rs.ReplicaDivisionPreference == v1alpha1.Aggregated ||
		rs.WeightPreference != nil && len(rs.WeightPreference.StaticWeightList) == 0 && rs.WeightPreference.DynamicWeight == v1alpha1.AvailableReplicas
	if byCapacity && !rebalance {
		if shares, ok := keep(replicas, cands); ok {
			return shares, ""
		}
	}
	if rs.ReplicaDivisionPreference == v1alpha1.Aggregated {
		return aggregate(int64(replicas), cands)
	}
	w, reason := weights(rs.WeightPreference, int64(replicas), cands)
	if reason != "" {
		return nil, reason
	}
	return largestRemainder(int64(replicas), w, cands), ""
}

// weights returns each candidate's weight for a Weighted division.
func weights(pref *v1alpha1.ClusterPreferences, replicas int64, cands []candidate) ([]int64, string) {
	w := make([]int64, len(cands))
	switch {
	case pref != nil && len(pref.StaticWeightList) > 0:
		matched := false
		for i, c := range cands {
			for _, s := range pref.StaticWeightList {
				if MatchesAffinity(&s.TargetCluster, c.cluster) {
					w[i] = max(w[i], min(s.Weight, math.MaxInt32))
				}
			}
			matched = matched || w[i] > 0
		}
		if !matched {
			for i := range w {
				w[i] = 1
			}
		}
	case pref != nil && pref.DynamicWeight == v1alpha1.AvailableReplicas:
		if reason := shortOfCapacity(replicas, cands); reason != "" {
			return nil, reason
		}
		for i, c := range cands {
			w[i] = c.capacity
		}
	default:
		for i := range w {
			w[i] = 1
		}
	}
	return w, ""
}

// largestRemainder shares total in proportion to w (each at most
// math.MaxInt32, so no product overflows): every candidate gets the floor
// of its quota, and the replicas left go one each to the largest
// remainders, ties broken by preferred.
func largestRemainder(total int64, w []int64, cands []candidate) []int64 {
	var sum int64
	for _, x := range w {
		sum += x
	}
	shares := make([]int64, len(w))
	if sum == 0 {
		return shares
	}
	rem := make([]int64, len(w))
	left := total
	for i, x := range w {
		shares[i] = total * x / sum
		rem[i] = total * x % sum
		left -= shares[i]
	}
	order := indices(len(w))
	slices.SortFunc(order, func(a, b int) int {
		if rem[a] != rem[b] {
			return cmp.Compare(rem[b], rem[a])
		}
		return preferred(cands[a], cands[b])
	})
	for _, i := range order[:left] {
		shares[i]++
	}
	return shares
}

// aggregate fills the clusters in turn, those of the previous result
// first, each part by capacity (most first) and name, until every replica
// is placed.
func aggregate(replicas int64, cands []candidate) ([]int64, string) {
	if reason := shortOfCapacity(replicas, cands); reason != "" {
		return nil, reason
	}
	order := indices(len(cands))
	slices.SortFunc(order, func(a, b int) int {
		ca, cb := cands[a], cands[b]
		if ca.scheduled != cb.scheduled {
			if ca.scheduled {
				return -1
			}
			return 1
		}
		if ca.capacity != cb.capacity {
			return cmp.Compare(cb.capacity, ca.capacity)
		}
		return cmp.Compare(ca.cluster.Name, cb.cluster.Name)
	})
	shares := make([]int64, len(cands))
	left := replicas
	for _, i := range order {
		if left == 0 {
			break
		}
		shares[i] = min(left, cands[i].capacity)
		left -= shares[i]
	}
	return shares, ""
}

// keep returns the previous division when it still stands: the same
// replicas, on clusters all still eligible. A division by capacity is made
// once and kept, as Karmada's is: made again at every pass, it would count
// the replicas a cluster has been given but does not yet run twice (in its
// previous share and in its free capacity) and drift towards the clusters
// that report slowest.
func keep(replicas int32, cands []candidate) ([]int64, bool) {
	var sum int64
	shares := make([]int64, len(cands))
	for i, c := range cands {
		shares[i] = int64(max(c.previous, 0))
		sum += shares[i]
	}
	return shares, sum == int64(replicas) && sum > 0
}

// shortOfCapacity says, when the candidates' capacities together hold
// fewer than replicas, how many they hold.
func shortOfCapacity(replicas int64, cands []candidate) string {
	var sum int64
	each := make([]string, len(cands))
	for i, c := range cands {
		sum += c.capacity
		each[i] = fmt.Sprintf("%s %d", c.cluster.Name, c.capacity)
	}
	if sum >= replicas {
		return ""
	}
	return fmt.Sprintf("0/%d clusters have enough capacity: %d available (%s), %d requested",
		len(cands), sum, strings.Join(each, ", "), replicas)
}

// preferred orders two candidates for stability: a cluster of the previous
// result first, then the one that ran more replicas there, then by name.
func preferred(a, b candidate) int {
	if a.scheduled != b.scheduled {
		if a.scheduled {
			return -1
		}
		return 1
	}
	if a.previous != b.previous {
		return cmp.Compare(b.previous, a.previous)
	}
	return cmp.Compare(a.cluster.Name, b.cluster.Name)
}

// indices is 0, 1, …, n-1.
func indices(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
