package placement

import (
	"cmp"
	"slices"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// Ramp limits how many replicas return to the clusters in returning (a
// Gradual return after failover): each gets at most its previous replicas
// plus step(its name, its target) this time, and what it does not get yet stays on
// the clusters that hold more than their target now, most first (then
// by name); what those cannot hold returns at once, so the total never
// changes. It returns the ramped result, sorted by name, and which of
// the returning clusters reached their target.
func Ramp(target, previous []v1alpha1.TargetCluster, returning map[string]bool, step func(name string, target int32) int32) ([]v1alpha1.TargetCluster, map[string]bool) {
	prev := map[string]int32{}
	for _, t := range previous {
		prev[t.Name] = t.Replicas
	}
	out := slices.Clone(target)
	done := map[string]bool{}
	var held int32 // replicas kept off the returning clusters
	for i, t := range out {
		if !returning[t.Name] {
			continue
		}
		limit := prev[t.Name] + max(step(t.Name, t.Replicas), 0)
		if t.Replicas <= limit {
			done[t.Name] = true
			continue
		}
		held += t.Replicas - limit
		out[i].Replicas = limit
	}
	// The clusters with a surplus over their target keep the held replicas.
	type surplus struct {
		i int
		n int32
	}
	var s []surplus
	for i, t := range out {
		if !returning[t.Name] && prev[t.Name] > t.Replicas {
			s = append(s, surplus{i, prev[t.Name] - t.Replicas})
		}
	}
	slices.SortFunc(s, func(a, b surplus) int {
		if a.n != b.n {
			return cmp.Compare(b.n, a.n)
		}
		return cmp.Compare(out[a.i].Name, out[b.i].Name)
	})
	for _, x := range s {
		k := min(x.n, held)
		out[x.i].Replicas += k
		held -= k
	}
	if held > 0 {
		// Nowhere to keep them (the workload was scaled, or the others'
		// shares changed): the returning clusters take their targets now.
		for i, t := range target {
			if returning[t.Name] {
				out[i].Replicas = t.Replicas
				done[t.Name] = true
			}
		}
		for _, x := range s {
			out[x.i].Replicas = target[x.i].Replicas
		}
	}
	return out, done
}
