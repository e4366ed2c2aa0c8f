package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// Input is one scheduling decision's input.
type Input struct {
	// Placement is the policy's placement.
	Placement v1alpha1.Placement
	// Replicas is the workload's spec.replicas; 0 for other kinds.
	Replicas int32
	// Request is one replica's resource requests; it may be empty.
	Request corev1.ResourceList
	// Clusters is every registered cluster.
	Clusters []v1alpha1.Cluster
	// Previous is the last result, for stability; it may be nil.
	Previous []v1alpha1.TargetCluster
	// Now is the time taints' tolerations are measured against.
	Now time.Time
	// Returning are the clusters failed over from: when one is eligible
	// again, replicas are divided by capacity anew even where the
	// previous division stands.
	Returning []string
	// DefaultNotReadyToleration is how long a not-ready or unreachable
	// taint is tolerated without a toleration for it (300 s in
	// production).
	DefaultNotReadyToleration time.Duration
}

// Result is where the resource goes.
type Result struct {
	// Clusters are the chosen clusters, sorted by name; Replicas is set
	// only for workloads.
	Clusters []v1alpha1.TargetCluster
	// Unschedulable, when non-empty, is why nothing could be placed, for
	// the binding's Scheduled=False condition; Clusters is then empty.
	Unschedulable string
	// RecheckAfter, when positive, is when the result changes by itself:
	// the soonest end of a NoExecute toleration's tolerationSeconds.
	RecheckAfter time.Duration
	// Evicted lists, sorted, the clusters of Previous dropped because a
	// NoExecute taint is not, or no longer, tolerated (failover).
	Evicted []string
}

// candidate is an eligible cluster.
type candidate struct {
	cluster   *v1alpha1.Cluster
	scheduled bool  // in the previous result
	previous  int32 // its replicas in the previous result
	capacity  int64 // available replicas plus previous (workloads only)
}

// Schedule places one resource; the package comment gives the rules.
func Schedule(in Input) Result {
	prev := make(map[string]int32, len(in.Previous))
	for _, t := range in.Previous {
		prev[t.Name] = t.Replicas
	}
	clusters := make([]*v1alpha1.Cluster, len(in.Clusters))
	for i := range in.Clusters {
		clusters[i] = &in.Clusters[i]
	}
	slices.SortStableFunc(clusters, func(a, b *v1alpha1.Cluster) int { return cmp.Compare(a.Name, b.Name) })

	workload := in.Replicas > 0
	var res Result
	var why reasons
	var cands []candidate
	for _, c := range clusters {
		previous, scheduled := prev[c.Name]
		if !MatchesAffinity(in.Placement.ClusterAffinity, c) {
			why.add("not in clusterAffinity")
			continue
		}
		v := judgeTaints(c.Spec.Taints, in.Placement.ClusterTolerations, scheduled, in.Now, in.DefaultNotReadyToleration)
		if v.untolerated != "" {
			why.add("has untolerated taint " + v.untolerated)
			if v.noExecute && scheduled {
				res.Evicted = append(res.Evicted, c.Name)
			}
			continue
		}
		if v.until > 0 && (res.RecheckAfter == 0 || v.until < res.RecheckAfter) {
			res.RecheckAfter = v.until
		}
		cand := candidate{cluster: c, scheduled: scheduled, previous: previous}
		if workload {
			cand.capacity = min(availableReplicas(c, in.Request)+int64(max(previous, 0)), math.MaxInt32)
		}
		cands = append(cands, cand)
	}

	cands, short := spread(in.Placement.SpreadConstraints, cands, workload, &why)
	if len(cands) == 0 || short != "" {
		parts := why.list()
		if short != "" {
			parts = append(parts, short)
		}
		if len(parts) == 0 {
			parts = []string{"no cluster is registered"}
		}
		res.Unschedulable = fmt.Sprintf("0/%d clusters are eligible: %s", len(clusters), strings.Join(parts, ", "))
		return res
	}

	if !workload {
		for _, c := range cands {
			res.Clusters = append(res.Clusters, v1alpha1.TargetCluster{Name: c.cluster.Name})
		}
		return res
	}
	rebalance := slices.ContainsFunc(cands, func(c candidate) bool { return slices.Contains(in.Returning, c.cluster.Name) })
	shares, reason := divide(in.Placement.ReplicaScheduling, in.Replicas, cands, rebalance)
	if reason != "" {
		res.Unschedulable = reason
		return res
	}
	for i, c := range cands {
		if shares[i] > 0 {
			res.Clusters = append(res.Clusters, v1alpha1.TargetCluster{Name: c.cluster.Name, Replicas: int32(shares[i])})
		}
	}
	return res
}

// reasons counts why clusters were left out.
type reasons struct{ counts map[string]int }

func (r *reasons) add(why string) {
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[why]++
}

// list formats the counts as "2 not in clusterAffinity", most frequent
// first, then alphabetically, with "has" made "have" for more than one.
func (r *reasons) list() []string {
	type entry struct {
		why string
		n   int
	}
	var es []entry
	for why, n := range r.counts {
		es = append(es, entry{why, n})
	}
	slices.SortFunc(es, func(a, b entry) int {
		if a.n != b.n {
			return cmp.Compare(b.n, a.n)
		}
		return cmp.Compare(a.why, b.why)
	})
	out := make([]string, len(es))
	for i, e := range es {
		why := e.why
		if rest, ok := strings.CutPrefix(why, "has "); ok && e.n > 1 {
			why = "have " + rest
		}
		out[i] = fmt.Sprintf("%d %s", e.n, why)
	}
	return out
}

// plural picks the singular or plural form for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
