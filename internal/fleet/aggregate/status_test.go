package aggregate

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kubectl/pkg/polymorphichelpers"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name       string
		gvk        schema.GroupVersionKind
		generation int64
		current    string
		copies     func(t *testing.T) []Copy
		want       string // "" for ok=false
	}{
		{
			name: "deployment rolled out",
			gvk:  deploymentKind, generation: 7,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "b", 3, `{"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
					 "conditions": [
					  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done", "lastUpdateTime": "2030-01-01T10:00:00Z", "lastTransitionTime": "2030-01-01T09:00:00Z"},
					  {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "up", "lastUpdateTime": "2030-01-01T09:30:00Z", "lastTransitionTime": "2030-01-01T08:00:00Z"}]}`),
					copyOf(t, "a", 1, `{"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
					 "conditions": [
					  {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "up", "lastUpdateTime": "2030-01-01T11:00:00+02:00", "lastTransitionTime": "2030-01-01T07:00:00Z"},
					  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet web-1 progressed", "lastUpdateTime": "2030-01-01T09:30:00Z", "lastTransitionTime": "2030-01-01T09:30:00Z"},
					  {"type": "Paused", "status": "True"}]}`),
				}
			},
			want: `{"observedGeneration": 7, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
			 "conditions": [
			  {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "up", "lastUpdateTime": "2030-01-01T09:30:00Z", "lastTransitionTime": "2030-01-01T08:00:00Z"},
			  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "cluster a: ReplicaSet web-1 progressed", "lastUpdateTime": "2030-01-01T10:00:00Z", "lastTransitionTime": "2030-01-01T09:30:00Z"}]}`,
		},
		{
			name: "deployment not yet observed everywhere keeps the current observedGeneration",
			gvk:  deploymentKind, generation: 8, current: `{"observedGeneration": 7, "replicas": 99}`,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 4, `{"observedGeneration": 4, "replicas": 1, "unavailableReplicas": 1}`),
					copyOf(t, "b", 4, `{"observedGeneration": 3, "replicas": 1, "terminatingReplicas": 0}`),
				}
			},
			want: `{"observedGeneration": 7, "replicas": 2, "unavailableReplicas": 1, "terminatingReplicas": 0}`,
		},
		{
			name: "deployment without status anywhere",
			gvk:  deploymentKind, generation: 2,
			copies: func(t *testing.T) []Copy {
				return []Copy{copyOf(t, "a", 1, "")}
			},
			want: `{}`,
		},
		{
			name: "deployment with no copies",
			gvk:  deploymentKind, generation: 2,
			copies: func(t *testing.T) []Copy { return nil },
			want:   `{"observedGeneration": 2}`,
		},
		{
			name: "deployment past its deadline in one cluster",
			gvk:  deploymentKind, generation: 2,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "Unknown", "reason": "Waiting", "message": "w"}]}`),
					copyOf(t, "b", 2, `{"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}, {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}]}`),
					copyOf(t, "c", 2, `{"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-2 has timed out progressing."}]}`),
				}
			},
			want: `{"observedGeneration": 2, "conditions": [
			  {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "cluster c: ReplicaSet web-2 has timed out progressing."},
			  {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "cluster b: quota"}]}`,
		},
		{
			name: "float64 numbers",
			gvk:  deploymentKind, generation: 3, current: `{"observedGeneration": 2}`,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					{Cluster: "a", Generation: 5, Status: floats(t, `{"observedGeneration": 5, "replicas": 2, "availableReplicas": 2}`)},
					{Cluster: "b", Generation: 1, Status: map[string]any{"observedGeneration": 1, "replicas": int32(1)}},
				}
			},
			want: `{"observedGeneration": 3, "replicas": 3, "availableReplicas": 2}`,
		},
		{
			name: "statefulset with equal revisions",
			gvk:  statefulSetKind, generation: 4,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-1"}`),
					copyOf(t, "b", 2, `{"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-1"}`),
				}
			},
			want: `{"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-1"}`,
		},
		{
			name: "statefulset revisions differ between clusters",
			gvk:  statefulSetKind, generation: 4,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 0, "currentRevision": "db-1", "updateRevision": "db-1"}`),
					copyOf(t, "b", 2, `{"observedGeneration": 2, "replicas": 0, "currentRevision": "db-2", "updateRevision": "db-2"}`),
				}
			},
			want: `{"observedGeneration": 4, "replicas": 0}`,
		},
		{
			name: "statefulset mid-rollout in one cluster",
			gvk:  statefulSetKind, generation: 4,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 1, "currentRevision": "db-1", "updateRevision": "db-1"}`),
					copyOf(t, "b", 2, `{"observedGeneration": 2, "replicas": 1, "currentRevision": "db-2", "updateRevision": "db-3"}`),
				}
			},
			want: `{"observedGeneration": 4, "replicas": 2, "currentRevision": "db-2", "updateRevision": "db-3"}`,
		},
		{
			name: "replicaset",
			gvk:  replicaSetKind, generation: 1,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}`),
					copyOf(t, "b", 1, `{"observedGeneration": 0, "replicas": 1}`),
				}
			},
			want: `{"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}`,
		},
		{
			name: "daemonset",
			gvk:  daemonSetKind, generation: 6,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}`),
					copyOf(t, "b", 1, `{"observedGeneration": 1, "currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1, "numberUnavailable": 1}`),
				}
			},
			want: `{"observedGeneration": 6, "currentNumberScheduled": 5, "numberMisscheduled": 1, "desiredNumberScheduled": 5, "numberReady": 4, "updatedNumberScheduled": 5, "numberAvailable": 4, "numberUnavailable": 1}`,
		},
		{
			name: "job running",
			gvk:  jobKind, generation: 1,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"active": 1, "ready": 1, "startTime": "2030-01-01T10:00:00Z"}`),
					copyOf(t, "b", 1, `{"succeeded": 2, "startTime": "2030-01-01T09:00:00Z", "completionTime": "2030-01-01T11:00:00Z",
					 "conditions": [{"type": "Complete", "status": "True"}]}`),
				}
			},
			want: `{"active": 1, "succeeded": 2, "ready": 1, "startTime": "2030-01-01T09:00:00Z"}`,
		},
		{
			name: "job complete everywhere",
			gvk:  jobKind, generation: 1,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"succeeded": 1, "ready": 0, "terminating": 0, "startTime": "2030-01-01T10:00:00Z", "completionTime": "2030-01-01T12:00:00Z",
					 "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T12:00:00Z"}]}`),
					copyOf(t, "b", 1, `{"succeeded": 2, "startTime": "2030-01-01T09:00:00Z", "completionTime": "2030-01-01T11:00:00Z",
					 "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T11:00:00Z"}]}`),
				}
			},
			want: `{"succeeded": 3, "ready": 0, "terminating": 0, "startTime": "2030-01-01T09:00:00Z", "completionTime": "2030-01-01T12:00:00Z",
			 "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T12:00:00Z"}]}`,
		},
		{
			name: "job failed in one cluster",
			gvk:  jobKind, generation: 1,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"succeeded": 1, "completionTime": "2030-01-01T12:00:00Z", "conditions": [{"type": "Complete", "status": "True"}]}`),
					copyOf(t, "b", 1, `{"failed": 4, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2030-01-01T11:00:00Z"}]}`),
				}
			},
			want: `{"succeeded": 1, "failed": 4, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
			 "message": "cluster b: Job has reached the specified backoff limit", "lastTransitionTime": "2030-01-01T11:00:00Z"}]}`,
		},
		{
			name: "service load balancers",
			gvk:  serviceKind,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "b", 0, `{"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}, {"hostname": "lb.example", "ports": [{"port": 80, "protocol": "TCP"}]}]}}`),
					{Cluster: "a", Status: floats(t, `{"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example", "ports": [{"port": 80, "protocol": "TCP"}]}]}}`)},
					copyOf(t, "c", 0, `{"loadBalancer": {}}`),
				}
			},
			want: `{"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example", "ports": [{"port": 80, "protocol": "TCP"}]}, {"ip": "192.0.2.2"}]}}`,
		},
		{
			name: "ingress without addresses",
			gvk:  ingressKind,
			copies: func(t *testing.T) []Copy {
				return []Copy{copyOf(t, "a", 1, ""), copyOf(t, "b", 1, `{"loadBalancer": {"ingress": []}}`)}
			},
			want: `{"loadBalancer": {}}`,
		},
		{
			name:   "no aggregation",
			gvk:    configMapKind,
			copies: func(t *testing.T) []Copy { return []Copy{copyOf(t, "a", 1, `{"x": 1}`)} },
		},
		{
			name:   "an Ingress of another group",
			gvk:    schema.GroupVersionKind{Group: "extensions", Version: "v1beta1", Kind: "Ingress"},
			copies: func(t *testing.T) []Copy { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Status(tt.gvk, tt.generation, object(t, tt.current), tt.copies(t))
			if tt.want == "" {
				if ok || got != nil {
					t.Errorf("Status = %s, %v; want no aggregation", show(got), ok)
				}
				return
			}
			if want := object(t, tt.want); !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("Status = %v\n  %s\nwant\n  %s", ok, show(got), show(want))
			}
		})
	}
}

// TestRolloutStatus runs kubectl's own `rollout status` logic on the
// upstream object with the aggregated status.
func TestRolloutStatus(t *testing.T) {
	const deploy = `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "generation": 5},
	 "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}}}}`
	const sts = `{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default", "generation": 5},
	 "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}, "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}}}}`
	const ds = `{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default", "generation": 5},
	 "spec": {"updateStrategy": {"type": "RollingUpdate"}, "selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}}}}`
	tests := []struct {
		name   string
		object string
		copies func(t *testing.T) []Copy
		done   bool
		msg    string
		err    string
	}{
		{
			name: "deployment not observed", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
					copyOf(t, "b", 3, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
				}
			},
			msg: "Waiting for deployment spec update to be observed...\n",
		},
		{
			name: "deployment updating", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
					copyOf(t, "b", 3, `{"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}`),
				}
			},
			msg: "Waiting for deployment \"web\" rollout to finish: 3 out of 4 new replicas have been updated...\n",
		},
		{
			name: "deployment old replicas terminating", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
					copyOf(t, "b", 3, `{"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}`),
				}
			},
			msg: "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n",
		},
		{
			name: "deployment waiting for availability", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}`),
					copyOf(t, "b", 3, `{"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
				}
			},
			msg: "Waiting for deployment \"web\" rollout to finish: 3 of 4 updated replicas are available...\n",
		},
		{
			name: "deployment rolled out", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
					copyOf(t, "b", 3, `{"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}`),
				}
			},
			done: true,
			msg:  "deployment \"web\" successfully rolled out\n",
		},
		{
			name: "deployment past its deadline", object: deploy,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 2, `{"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}`),
					copyOf(t, "b", 3, `{"observedGeneration": 3, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}`),
				}
			},
			err: "deployment \"web\" exceeded its progress deadline",
		},
		{
			name: "statefulset rolled out, revisions differ by cluster", object: sts,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1, "currentRevision": "db-a", "updateRevision": "db-a"}`),
					copyOf(t, "b", 1, `{"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1, "currentRevision": "db-b", "updateRevision": "db-b"}`),
				}
			},
			done: true,
			msg:  "statefulset rolling update complete 2 pods at revision ...\n",
		},
		{
			name: "statefulset rolling in one cluster", object: sts,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "db-a", "updateRevision": "db-a"}`),
					copyOf(t, "b", 1, `{"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 0, "currentRevision": "db-b", "updateRevision": "db-c"}`),
				}
			},
			msg: "waiting for statefulset rolling update to complete 1 pods at revision db-c...\n",
		},
		{
			name: "daemonset rolling", object: ds,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}`),
					copyOf(t, "b", 1, `{"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1, "numberAvailable": 2}`),
				}
			},
			msg: "Waiting for daemon set \"agent\" rollout to finish: 4 out of 5 new pods have been updated...\n",
		},
		{
			name: "daemonset rolled out", object: ds,
			copies: func(t *testing.T) []Copy {
				return []Copy{
					copyOf(t, "a", 1, `{"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}`),
					copyOf(t, "b", 1, `{"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}`),
				}
			},
			done: true,
			msg:  "daemon set \"agent\" successfully rolled out\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: object(t, tt.object)}
			status, ok := Status(obj.GroupVersionKind(), obj.GetGeneration(), nil, tt.copies(t))
			if !ok {
				t.Fatal("no aggregation")
			}
			obj.Object["status"] = status
			viewer, err := polymorphichelpers.StatusViewerFor(obj.GroupVersionKind().GroupKind())
			if err != nil {
				t.Fatal(err)
			}
			msg, done, err := viewer.Status(obj, 0)
			if tt.err != "" || err != nil {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("rollout status error %v, want %q", err, tt.err)
				}
				return
			}
			if msg != tt.msg || done != tt.done {
				t.Errorf("rollout status %q, done %v; want %q, %v", msg, done, tt.msg, tt.done)
			}
		})
	}
}
