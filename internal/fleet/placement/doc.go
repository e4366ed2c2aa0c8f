// Package placement decides where a propagated resource goes: which of the
// registered clusters, and for a workload how many of its replicas each one
// runs. It is the fleet's scheduler core, modelled on Karmada's scheduler
// and simplified.
//
// # What it owns
//
// Schedule, a pure function from (placement, replicas, one replica's
// requests, clusters, previous result, now) to the new result. It does no
// I/O, keeps no state and reads no clock: the binding controller calls it
// with the binding's spec and the clusters of the informer cache, writes
// Result.Clusters to the binding's spec.clusters, Result.Unschedulable to
// its Scheduled condition, records Result.Evicted in spec.failedOver, and
// requeues the binding after Result.RecheckAfter. It does not own failover
// return policies (Immediate, Gradual, Never), which the controller
// applies by what it passes as Clusters and Previous (and, for Gradual, by
// Ramp on the result), nor the taints
// themselves (the cluster controller adds cluster.fleet.skiff.dev/not-ready
// and /unreachable).
//
// # Steps
//
//  1. Filter. A cluster is eligible when it matches
//     placement.clusterAffinity (MatchesAffinity) and its taints are
//     tolerated by placement.clusterTolerations:
//     - NoSchedule taints must be tolerated, except on a cluster of the
//     previous result, which is never dropped for NoSchedule taints alone;
//     - NoExecute taints must be tolerated. A toleration with
//     tolerationSeconds tolerates its taint until taint.timeAdded plus
//     those seconds (the smallest, when several match; one without seconds
//     tolerates for ever). A not-ready or unreachable taint that no
//     toleration matches is tolerated for DefaultNotReadyToleration, as
//     kube-apiserver gives pods default tolerations. A taint without
//     timeAdded counts as added now: it never runs out by itself and so
//     sets no RecheckAfter (the upstream always stamps the taints it adds);
//     - PreferNoSchedule taints are ignored.
//     A cluster of the previous result dropped for a NoExecute taint is
//     listed in Result.Evicted; the soonest future end of a toleration is
//     Result.RecheckAfter.
//  2. Spread. Each spread constraint with minGroups or maxGroups set groups
//     the remaining clusters: by region, zone or provider (a cluster
//     without that field is dropped), by the value of spreadByLabel (a
//     cluster without the label is dropped), or one group per cluster
//     (spreadByField cluster). Fewer groups than minGroups makes the
//     resource unschedulable; more than maxGroups keeps the preferred
//     ones: groups holding a cluster of the previous result first, then,
//     for workloads, those with the most capacity, then by name. The
//     grouping constraints apply in their order, the cluster constraint
//     last. Karmada's spread selection also balances replicas across
//     groups; this one only chooses groups.
//  3. Divide (workloads only, Replicas > 0).
//     - Duplicated (replicaScheduling nil, or type Duplicated): every
//     cluster runs all replicas, whatever its capacity.
//     - Divided with preference Weighted or none: by staticWeightList (a
//     cluster weighs the largest weight among the entries whose
//     targetCluster it matches; weight 0 gets nothing; if no cluster
//     matches any entry every cluster weighs 1, as in Karmada), else by
//     dynamicWeight AvailableReplicas (each cluster's capacity; the
//     capacities together must hold the replicas), else 1 each. The
//     replicas are shared by the largest-remainder method; equal
//     remainders go first to clusters of the previous result, then to the
//     one that ran more replicas there, then by name, so that the same
//     input always gives the same output and a re-run keeps the split.
//     Weights above 2^31-1 count as 2^31-1.
//     - Divided with preference Aggregated: clusters of the previous
//     result first, then the others, each part by capacity (most first)
//     and name, are filled in turn up to their capacity until every
//     replica is placed; so the fewest new clusters are used and a
//     scale-up keeps the clusters already running the workload.
//     Clusters that receive no replica are left out of a Divided result.
//     A replicaScheduling with an empty type is Divided (the CRD's
//     default).
//  4. A resource that is not a workload (Replicas == 0) goes to every
//     cluster left after steps 1 and 2, with Replicas 0.
//
// # Capacity
//
// A cluster's available replicas come from status.resourceSummary: for
// each requested resource, (allocatable - allocated - allocating) divided
// by the request, rounded down, the smallest over the resources (a
// resource the cluster does not list as allocatable allows none); further
// capped by allocatable pods minus allocated and allocating pods when
// allocatable lists pods. Without requests only the pod count limits, and
// without that math.MaxInt32. A cluster without resourceSummary has none.
//
// A cluster's capacity for the workload is its available replicas plus the
// replicas the previous result gave it: those replicas' requests are
// already counted in allocated, and would be freed by moving them. Without
// this a workload that filled a cluster would find it full on the next
// run and move or become unschedulable. Capacity is capped at
// math.MaxInt32.
//
// # Unschedulable
//
// When nothing can be placed, Result.Unschedulable says why, in
// kube-scheduler's style, for example
//
//	0/3 clusters are eligible: 2 not in clusterAffinity, 1 has untolerated taint cluster.fleet.skiff.dev/not-ready
//	0/4 clusters are eligible: 1 not in clusterAffinity, 3 eligible form 1 group by region, minGroups is 2
//	0/2 clusters have enough capacity: 7 available (a 3, b 4), 10 requested
package placement
