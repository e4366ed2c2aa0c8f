// Package sim runs simulated nodes: skiff's kwok. A Sim registers Nodes and
// then behaves, through the Kubernetes API only, as the kubelets of those
// nodes would: it renews each node's Lease in kube-node-lease, refreshes the
// node's conditions, and plays out the pods the scheduler binds to its
// nodes (Pending → Running → Succeeded/Failed, graceful deletion) by writing
// pods/status and making the kubelet's final delete. No containers run.
//
// It exists to test and benchmark the control plane at scale (1,000 nodes,
// 30,000 pods on a small machine), so it is built like a controller rather
// than like N kubelets:
//
//	one pod informer (spec.nodeName!="") ─► pod queue (rate-limited, delaying) ─► pod workers
//	one node informer (podCIDR, addresses)
//	node queue (one item per node, re-added every HeartbeatInterval) ─► node workers
//	                                        (register, renew Lease, refresh conditions)
//
// Timers (start delay, run time, heartbeats) are delayed queue items, never
// sleeping goroutines. Every decision is level-based: a pod's next step is
// computed from the pod object and the clock alone (see decide), so a
// restarted Sim picks up where the previous one stopped, and Nodes that
// already exist are reused.
//
// Pod behaviour can be steered per pod with annotations:
//
//	sim.skiff.dev/exit-code:   "1"    exit code of every container (non-zero: phase Failed)
//	sim.skiff.dev/run-seconds: "2.5"  how long the pod runs before it exits
//
// Only pods whose restartPolicy is Never or OnFailure exit; restartPolicy
// Always pods run until deleted. A pod that exits with a non-zero code ends
// Failed whatever its restartPolicy (a real kubelet would restart an
// OnFailure pod's containers in place).
//
// What a Sim does not do: run containers, probes, volumes, logs, exec or
// port-forward; report resource usage; evict pods under pressure. When Run
// returns, the Nodes stay behind without heartbeats, so the node lifecycle
// controller marks them Unknown, taints them and evicts their pods, just as
// it does for a lost machine.
package sim
