package override

import (
	"reflect"
	"testing"
)

func TestStrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "metadata and status",
			in: `{"apiVersion": "apps/v1", "kind": "Deployment",
			 "metadata": {"name": "web", "namespace": "default", "generateName": "w-", "uid": "u", "resourceVersion": "7", "generation": 3,
			  "creationTimestamp": "2030-01-01T00:00:00Z", "deletionTimestamp": "2030-01-01T00:00:00Z", "selfLink": "/x",
			  "managedFields": [{"manager": "kubectl"}], "ownerReferences": [{"name": "o"}], "finalizers": ["f"],
			  "labels": {"app": "web"},
			  "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "deployment.kubernetes.io/revision": "4", "team": "a"}},
			 "spec": {"replicas": 3}, "status": {"replicas": 3}}`,
			want: `{"apiVersion": "apps/v1", "kind": "Deployment",
			 "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "annotations": {"team": "a"}},
			 "spec": {"replicas": 3}}`,
		},
		{
			name: "no annotations left",
			in:   `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}, "data": {"k": "v"}}`,
			want: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}`,
		},
		{
			name: "ClusterIP service",
			in: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
			 "spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"], "ports": [{"port": 80, "nodePort": 30080}], "selector": {"app": "web"}},
			 "status": {"loadBalancer": {}}}`,
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
			 "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}`,
		},
		{
			name: "NodePort service keeps its node ports",
			in:   `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "ports": [{"port": 80, "nodePort": 30080}]}}`,
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}`,
		},
		{
			name: "LoadBalancer service keeps its node ports",
			in:   `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.5"], "ports": [{"port": 80, "nodePort": 30080}]}}`,
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]}}`,
		},
		{
			name: "headless service",
			in:   `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None"}}`,
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}`,
		},
		{
			name: "job",
			in: `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "labels": {"job-name": "j"}},
			 "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
			  "template": {"metadata": {"labels": {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "batch.kubernetes.io/job-name": "j", "job-name": "j", "app": "x"}},
			   "spec": {"restartPolicy": "Never"}}}}`,
			want: `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "labels": {"job-name": "j"}},
			 "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never"}}}}`,
		},
		{
			name: "job with only generated labels",
			in:   `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"selector": {}, "template": {"metadata": {"labels": {"job-name": "j"}}}}}`,
			want: `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"metadata": {}}}}`,
		},
		{
			name: "job with a manual selector",
			in:   `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"job-name": "j"}}, "template": {"metadata": {"labels": {"job-name": "j"}}}}}`,
			want: `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"job-name": "j"}}, "template": {"metadata": {"labels": {"job-name": "j"}}}}}`,
		},
		{
			name: "a Job of another group is not a batch Job",
			in:   `{"apiVersion": "example.com/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"selector": {}}}`,
			want: `{"apiVersion": "example.com/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"selector": {}}}`,
		},
		{
			name: "persistent volume claim",
			in: `{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
			 "metadata": {"name": "data", "namespace": "db", "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": "n1", "volume.kubernetes.io/storage-provisioner": "p", "backup": "daily"}},
			 "spec": {"volumeName": "pvc-123", "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Bound"}}`,
			want: `{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
			 "metadata": {"name": "data", "namespace": "db", "annotations": {"backup": "daily"}},
			 "spec": {"resources": {"requests": {"storage": "1Gi"}}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := parse(t, tt.in)
			got := Strip(in)
			if want := parse(t, tt.want); !reflect.DeepEqual(got.Object, want.Object) {
				t.Errorf("got  %s\nwant %s", show(got), show(want))
			}
			if again := parse(t, tt.in); !reflect.DeepEqual(in.Object, again.Object) {
				t.Errorf("Strip changed its input: %s", show(in))
			}
		})
	}
}
