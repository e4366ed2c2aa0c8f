package placement

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// spread applies the spread constraints to cands (sorted by name) and
// returns the clusters kept, sorted by name. Clusters dropped for lacking
// a grouping value are counted in why. short, when non-empty, says which
// minGroups could not be met.
func spread(cs []v1alpha1.SpreadConstraint, cands []candidate, workload bool, why *reasons) (kept []candidate, short string) {
	ordered := make([]v1alpha1.SpreadConstraint, 0, len(cs))
	for _, c := range cs {
		if c.SpreadByField != v1alpha1.SpreadByFieldCluster {
			ordered = append(ordered, c)
		}
	}
	for _, c := range cs {
		if c.SpreadByField == v1alpha1.SpreadByFieldCluster {
			ordered = append(ordered, c)
		}
	}
	for _, c := range ordered {
		if c.MinGroups <= 0 && c.MaxGroups <= 0 {
			continue
		}
		cands, short = spreadOne(c, cands, workload, why)
		if short != "" {
			return nil, short
		}
	}
	return cands, ""
}

// group is the clusters sharing one value of a spread constraint's field
// or label.
type group struct {
	key       string
	members   []candidate
	scheduled bool  // a member is in the previous result
	capacity  int64 // the members' capacities together
}

// spreadOne applies one constraint.
func spreadOne(c v1alpha1.SpreadConstraint, cands []candidate, workload bool, why *reasons) ([]candidate, string) {
	by := groupedBy(c)
	var groups []*group
	index := map[string]*group{}
	eligible := 0
	for _, cand := range cands {
		key := groupKey(c, cand.cluster)
		if key == "" {
			why.add("has no " + by)
			continue
		}
		eligible++
		g := index[key]
		if g == nil {
			g = &group{key: key}
			index[key] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, cand)
		g.scheduled = g.scheduled || cand.scheduled
		g.capacity += cand.capacity
	}
	if len(groups) < c.MinGroups {
		return nil, fmt.Sprintf("%d eligible form %d %s by %s, minGroups is %d",
			eligible, len(groups), plural(len(groups), "group", "groups"), by, c.MinGroups)
	}
	slices.SortFunc(groups, func(a, b *group) int {
		if a.scheduled != b.scheduled {
			if a.scheduled {
				return -1
			}
			return 1
		}
		if workload && a.capacity != b.capacity {
			return cmp.Compare(b.capacity, a.capacity)
		}
		return cmp.Compare(a.key, b.key)
	})
	if c.MaxGroups > 0 && len(groups) > c.MaxGroups {
		groups = groups[:c.MaxGroups]
	}
	var kept []candidate
	for _, g := range groups {
		kept = append(kept, g.members...)
	}
	slices.SortFunc(kept, func(a, b candidate) int { return cmp.Compare(a.cluster.Name, b.cluster.Name) })
	return kept, ""
}

// groupedBy names what a constraint groups by, for messages: "region",
// "label topology.kubernetes.io/zone", "cluster".
func groupedBy(c v1alpha1.SpreadConstraint) string {
	if c.SpreadByField != "" {
		return string(c.SpreadByField)
	}
	return "label " + c.SpreadByLabel
}

// groupKey is the cluster's group under c; empty when it has none.
func groupKey(c v1alpha1.SpreadConstraint, cl *v1alpha1.Cluster) string {
	switch c.SpreadByField {
	case v1alpha1.SpreadByFieldCluster:
		return cl.Name
	case v1alpha1.SpreadByFieldRegion:
		return cl.Spec.Region
	case v1alpha1.SpreadByFieldZone:
		return cl.Spec.Zone
	case v1alpha1.SpreadByFieldProvider:
		return cl.Spec.Provider
	case "":
		return cl.Labels[c.SpreadByLabel]
	default:
		return ""
	}
}
