package aggregate

import (
	"cmp"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Copy is one cluster's copy of a propagated object, as its agent
// reported it.
type Copy struct {
	// Cluster is the downstream cluster's name.
	Cluster string
	// Status is the copy's .status; it may be nil.
	Status map[string]any
	// Generation is the copy's metadata.generation.
	Generation int64
}

// presence is when a summed counter appears in the result.
type presence int

const (
	always   presence = iota // a required field
	nonZero                  // an optional (omitempty) field
	reported                 // a pointer field: when some copy has it
)

// counter is a status field that is summed over the copies.
type counter struct {
	name string
	when presence
}

// counters per kind, in the order of the API's types.
var (
	deploymentCounters = []counter{
		{"replicas", nonZero}, {"updatedReplicas", nonZero}, {"readyReplicas", nonZero},
		{"availableReplicas", nonZero}, {"unavailableReplicas", nonZero}, {"terminatingReplicas", reported},
	}
	statefulSetCounters = []counter{
		{"replicas", always}, {"readyReplicas", nonZero}, {"currentReplicas", nonZero},
		{"updatedReplicas", nonZero}, {"availableReplicas", nonZero},
	}
	replicaSetCounters = []counter{
		{"replicas", always}, {"fullyLabeledReplicas", nonZero}, {"readyReplicas", nonZero}, {"availableReplicas", nonZero},
	}
	daemonSetCounters = []counter{
		{"currentNumberScheduled", always}, {"numberMisscheduled", always}, {"desiredNumberScheduled", always},
		{"numberReady", always}, {"updatedNumberScheduled", nonZero}, {"numberAvailable", nonZero}, {"numberUnavailable", nonZero},
	}
	jobCounters = []counter{
		{"active", nonZero}, {"succeeded", nonZero}, {"failed", nonZero}, {"ready", reported}, {"terminating", reported},
	}
)

// deploymentConditions are the Deployment condition types merged.
var deploymentConditions = []string{"Available", "Progressing", "ReplicaFailure"}

// Status returns the upstream object's aggregated .status for its kind,
// given the upstream object's generation, its current status and its
// copies; ok is false for kinds without aggregation, whose upstream status
// is left alone. The package comment gives the rules.
func Status(gvk schema.GroupVersionKind, generation int64, current map[string]any, copies []Copy) (status map[string]any, ok bool) {
	copies = slices.Clone(copies)
	slices.SortStableFunc(copies, func(a, b Copy) int { return cmp.Compare(a.Cluster, b.Cluster) })

	switch {
	case gvk.Group == "apps" && gvk.Kind == "Deployment":
		status = sum(deploymentCounters, copies)
		observed(status, generation, current, copies)
		if conds := mergeConditions(deploymentConditions, copies); len(conds) > 0 {
			status["conditions"] = conds
		}
	case gvk.Group == "apps" && gvk.Kind == "StatefulSet":
		status = sum(statefulSetCounters, copies)
		observed(status, generation, current, copies)
		revisions(status, copies)
	case gvk.Group == "apps" && gvk.Kind == "ReplicaSet":
		status = sum(replicaSetCounters, copies)
		observed(status, generation, current, copies)
	case gvk.Group == "apps" && gvk.Kind == "DaemonSet":
		status = sum(daemonSetCounters, copies)
		observed(status, generation, current, copies)
	case gvk.Group == "batch" && gvk.Kind == "Job":
		status = sum(jobCounters, copies)
		job(status, copies)
	case gvk.Group == "" && gvk.Kind == "Service",
		gvk.Group == "networking.k8s.io" && gvk.Kind == "Ingress":
		status = loadBalancer(copies)
	default:
		return nil, false
	}
	return status, true
}

// sum adds up the counters over the copies.
func sum(counters []counter, copies []Copy) map[string]any {
	status := map[string]any{}
	for _, c := range counters {
		var total int64
		seen := false
		for _, cp := range copies {
			if n, ok := integer(cp.Status, c.name); ok {
				total += n
				seen = true
			}
		}
		if c.when == always || (c.when == nonZero && total != 0) || (c.when == reported && seen) {
			status[c.name] = total
		}
	}
	return status
}

// observed sets observedGeneration: the upstream generation once every
// copy has observed its own spec, else the current one.
func observed(status map[string]any, generation int64, current map[string]any, copies []Copy) {
	all := true
	for _, cp := range copies {
		if n, ok := integer(cp.Status, "observedGeneration"); !ok || n < cp.Generation {
			all = false
			break
		}
	}
	if all {
		status["observedGeneration"] = generation
	} else if n, ok := integer(current, "observedGeneration"); ok {
		status["observedGeneration"] = n
	}
}

// mergeConditions merges the conditions of the given types.
func mergeConditions(types []string, copies []Copy) []any {
	var out []any
	for _, t := range types {
		var from []Copy
		var conds []map[string]any
		for _, cp := range copies {
			if c := condition(cp.Status, t); c != nil {
				from = append(from, cp)
				conds = append(conds, c)
			}
		}
		if len(conds) == 0 {
			continue
		}
		pick := slices.IndexFunc(conds, func(c map[string]any) bool { return c["status"] == "False" })
		if pick < 0 {
			pick = slices.IndexFunc(conds, func(c map[string]any) bool { return c["status"] != "True" })
		}
		if pick < 0 {
			pick = 0
		}
		c := conds[pick]
		merged := map[string]any{"type": t, "status": c["status"]}
		if r, ok := c["reason"].(string); ok && r != "" {
			merged["reason"] = r
		}
		if m, ok := c["message"].(string); ok && m != "" {
			same := len(conds) == len(copies) && !slices.ContainsFunc(conds, func(o map[string]any) bool { return o["message"] != m })
			if c["status"] != "True" || !same {
				m = "cluster " + from[pick].Cluster + ": " + m
			}
			merged["message"] = m
		}
		latest(merged, conds, "lastUpdateTime")
		latest(merged, conds, "lastTransitionTime")
		out = append(out, merged)
	}
	return out
}

// latest sets dst[key] to the latest of the conds' key timestamps.
func latest(dst map[string]any, conds []map[string]any, key string) {
	best := ""
	for _, c := range conds {
		if s, ok := c[key].(string); ok && s != "" && (best == "" || later(s, best)) {
			best = s
		}
	}
	if best != "" {
		dst[key] = best
	}
}

// revisions sets a StatefulSet's currentRevision and updateRevision.
func revisions(status map[string]any, copies []Copy) {
	if len(copies) == 0 {
		return
	}
	cur, upd := revisionPair(copies[0])
	same := true
	for _, cp := range copies {
		c, u := revisionPair(cp)
		if c != u {
			// Mid-rollout in this cluster: show it.
			setRevisions(status, c, u)
			return
		}
		same = same && c == cur && u == upd
	}
	if same {
		setRevisions(status, cur, upd)
	}
}

func revisionPair(cp Copy) (current, update string) {
	current, _ = cp.Status["currentRevision"].(string)
	update, _ = cp.Status["updateRevision"].(string)
	return current, update
}

func setRevisions(status map[string]any, current, update string) {
	if current != "" {
		status["currentRevision"] = current
	}
	if update != "" {
		status["updateRevision"] = update
	}
}

// job sets a Job's times and conditions.
func job(status map[string]any, copies []Copy) {
	var start, completion string
	completed := len(copies) > 0
	for _, cp := range copies {
		if s, ok := cp.Status["startTime"].(string); ok && s != "" && (start == "" || later(start, s)) {
			start = s
		}
		s, ok := cp.Status["completionTime"].(string)
		if !ok || s == "" {
			completed = false
		} else if completion == "" || later(s, completion) {
			completion = s
		}
	}
	if start != "" {
		status["startTime"] = start
	}
	if completed {
		status["completionTime"] = completion
	}

	var conds []any
	for _, cp := range copies {
		if c := condition(cp.Status, "Failed"); c != nil && c["status"] == "True" {
			failed := map[string]any{"type": "Failed", "status": "True"}
			for _, k := range []string{"reason", "lastProbeTime", "lastTransitionTime"} {
				if v, ok := c[k].(string); ok && v != "" {
					failed[k] = v
				}
			}
			msg, _ := c["message"].(string)
			failed["message"] = "cluster " + cp.Cluster + ": " + msg
			if msg == "" {
				failed["message"] = "cluster " + cp.Cluster + " failed"
			}
			conds = append(conds, failed)
			break
		}
	}
	var complete []map[string]any
	for _, cp := range copies {
		if c := condition(cp.Status, "Complete"); c != nil && c["status"] == "True" {
			complete = append(complete, c)
		}
	}
	if len(copies) > 0 && len(complete) == len(copies) {
		done := map[string]any{"type": "Complete", "status": "True"}
		for _, k := range []string{"reason", "message"} {
			if v, ok := complete[0][k].(string); ok && v != "" {
				done[k] = v
			}
		}
		latest(done, complete, "lastProbeTime")
		latest(done, complete, "lastTransitionTime")
		conds = append(conds, done)
	}
	if len(conds) > 0 {
		status["conditions"] = conds
	}
}

// loadBalancer concatenates the copies' loadBalancer.ingress.
func loadBalancer(copies []Copy) map[string]any {
	var ingress []any
	for _, cp := range copies {
		for _, in := range objects(nested(cp.Status, "loadBalancer")["ingress"]) {
			n := normalize(in)
			if !slices.ContainsFunc(ingress, func(have any) bool { return reflect.DeepEqual(have, n) }) {
				ingress = append(ingress, n)
			}
		}
	}
	lb := map[string]any{}
	if len(ingress) > 0 {
		lb["ingress"] = ingress
	}
	return map[string]any{"loadBalancer": lb}
}
