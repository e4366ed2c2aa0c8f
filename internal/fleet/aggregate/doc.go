// Package aggregate folds the statuses of a propagated object's copies in
// the downstream clusters into the upstream object's .status, and
// classifies each copy's health.
//
// # What it owns
//
// Two pure functions over unstructured status maps: Status, which the
// status controller calls with what the agents reported (the bindings'
// aggregatedStatus) and writes to the upstream object's status
// subresource, and Health, which the agent calls per copy for the Work's
// manifestStatuses. It does not own collecting the statuses or writing
// them.
//
// # Status
//
// The result replaces the upstream status; only observedGeneration is
// carried over from it (see below). Copies are taken in cluster-name
// order. Counters are summed; fields the API marks optional are left out
// when zero, those it declares as pointers (Deployment
// terminatingReplicas, Job ready and terminating) are set only when some
// copy has them. Numbers may be int64 or float64 (or int, int32) in the
// input and are int64 in the output.
//
//   - Deployment (apps/v1): replicas, updatedReplicas, readyReplicas,
//     availableReplicas, unavailableReplicas, terminatingReplicas.
//     Conditions Available, Progressing and ReplicaFailure are merged: True
//     when True in every copy that has the condition; otherwise the first
//     copy whose condition is False, else the first not True, gives status,
//     reason and message, the message prefixed "cluster NAME: " (unless
//     every copy has the condition True with the same message); an
//     all-True condition takes the first copy's reason and message;
//     lastUpdateTime and lastTransitionTime are the latest. Other
//     condition types are dropped.
//   - StatefulSet: replicas, readyReplicas, currentReplicas,
//     updatedReplicas, availableReplicas; currentRevision and
//     updateRevision when every copy has the same ones. When they differ
//     between clusters (per-cluster overrides change the template hash)
//     they are left out, unless a copy is itself mid-rollout (its
//     currentRevision differs from its updateRevision): then that copy's
//     pair is shown, so that `kubectl rollout status` keeps waiting.
//   - ReplicaSet: replicas, fullyLabeledReplicas, readyReplicas,
//     availableReplicas.
//   - DaemonSet: currentNumberScheduled, numberMisscheduled,
//     desiredNumberScheduled, numberReady, updatedNumberScheduled,
//     numberAvailable, numberUnavailable.
//   - Job (batch/v1): active, succeeded, failed, ready, terminating;
//     startTime the earliest; completionTime the latest, only once every
//     copy has one. Condition Complete True when every copy is Complete
//     (times the latest), Failed True when any copy Failed (the first, its
//     message prefixed "cluster NAME: ").
//   - Service (v1) and Ingress (networking.k8s.io/v1):
//     loadBalancer.ingress is every copy's, in cluster order, without
//     repeats.
//
// The workload kinds' observedGeneration is the upstream generation once
// every copy has observed its own spec (the copy's status.observedGeneration
// is at least its metadata.generation), and otherwise the upstream
// status's previous observedGeneration, if any. With the summed counters
// this is what `kubectl rollout status` on the upstream reads. The caller
// must pass only copies rendered from the upstream's current spec: a copy
// still running an older one has observed its own spec too.
//
// # Health
//
// A copy without status is Unknown for the kinds below; so is one whose
// observedGeneration is behind its generation (its status describes an
// older spec). Otherwise:
//
//   - Deployment: Healthy when updatedReplicas, replicas and
//     availableReplicas are equal (a missing one is 0);
//   - StatefulSet: when updatedReplicas, replicas and readyReplicas are
//     equal;
//   - ReplicaSet: when availableReplicas equals replicas;
//   - DaemonSet: when numberAvailable equals desiredNumberScheduled;
//   - Job: Unhealthy with a Failed=True condition, else Healthy (a Job has
//     no observedGeneration);
//
// and Unhealthy when not. Every other kind has no health rule and is
// Healthy, with or without a status.
package aggregate
