// Package workloads holds integration tests of Kubernetes workloads on
// skiff: a real control plane (test/testenv) and simulated nodes
// (internal/sim) in one test process. The tests assert what a user sees
// through the API: Deployments rolling out, StatefulSets ordering their
// pods, DaemonSets following nodes, Jobs completing or failing, garbage
// collection, scheduling decisions, and what happens to pods when a node is
// lost.
//
// One server serves the whole package, with the node lifecycle timers cut
// to seconds (see TestMain), so tests share nodes: a test that needs nodes
// of its own gives them a label or taint named after its namespace, and
// only the node-loss test stops a Sim.
package workloads
