package placement

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

const (
	notReady    = v1alpha1.TaintNotReady
	unreachable = v1alpha1.TaintUnreachable
	noSchedule  = corev1.TaintEffectNoSchedule
	noExecute   = corev1.TaintEffectNoExecute
)

func abc() []v1alpha1.Cluster {
	return clusters(makeCluster("a"), makeCluster("b"), makeCluster("c"))
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		name      string
		placement v1alpha1.Placement
		replicas  int32
		request   corev1.ResourceList
		clusters  []v1alpha1.Cluster
		previous  []v1alpha1.TargetCluster
		returning []string
		want      Result
	}{
		// Filtering.
		{
			name:     "non-workload goes everywhere",
			clusters: abc(),
			want:     Result{Clusters: targets("a", 0, "b", 0, "c", 0)},
		},
		{
			name:      "clusterAffinity",
			placement: v1alpha1.Placement{ClusterAffinity: names("c", "a")},
			clusters:  abc(),
			want:      Result{Clusters: targets("a", 0, "c", 0)},
		},
		{
			name: "nothing eligible",
			placement: v1alpha1.Placement{ClusterAffinity: &v1alpha1.ClusterAffinity{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			}},
			clusters: clusters(makeCluster("a"), makeCluster("b"), makeCluster("c").label("env", "prod").taint(notReady, noSchedule, 0)),
			want:     Result{Unschedulable: "0/3 clusters are eligible: 2 not in clusterAffinity, 1 has untolerated taint cluster.fleet.skiff.dev/not-ready"},
		},
		{
			name:     "reasons agree with their count",
			clusters: clusters(makeCluster("a").taint("k", noSchedule, 0), makeCluster("b").taint("k", noSchedule, 0)),
			want:     Result{Unschedulable: "0/2 clusters are eligible: 2 have untolerated taint k"},
		},
		{
			name: "no clusters",
			want: Result{Unschedulable: "0/0 clusters are eligible: no cluster is registered"},
		},
		{
			name:     "NoSchedule taint keeps new placements out",
			clusters: clusters(makeCluster("a").taint("maintenance", noSchedule, 0), makeCluster("b")),
			want:     Result{Clusters: targets("b", 0)},
		},
		{
			name:      "NoSchedule taint tolerated",
			placement: v1alpha1.Placement{ClusterTolerations: []corev1.Toleration{tolerate("maintenance", "")}},
			clusters:  clusters(makeCluster("a").taint("maintenance", noSchedule, 0), makeCluster("b")),
			want:      Result{Clusters: targets("a", 0, "b", 0)},
		},
		{
			name:      "NoSchedule taint does not drop a scheduled cluster",
			clusters:  clusters(makeCluster("a").taint("maintenance", noSchedule, 0), makeCluster("b")),
			previous:  targets("a", 0),
			want:      Result{Clusters: targets("a", 0, "b", 0)},
			placement: v1alpha1.Placement{},
		},
		{
			name:     "PreferNoSchedule ignored",
			clusters: clusters(makeCluster("a").taint("k", corev1.TaintEffectPreferNoSchedule, 0)),
			want:     Result{Clusters: targets("a", 0)},
		},
		{
			name:     "untolerated NoExecute evicts a scheduled cluster",
			clusters: clusters(makeCluster("a").taint("dead", noExecute, 0), makeCluster("b").taint("dead", noExecute, 0), makeCluster("c")),
			previous: targets("a", 0),
			want:     Result{Clusters: targets("c", 0), Evicted: []string{"a"}},
		},
		{
			name:     "not-ready is tolerated by default for a while",
			clusters: clusters(makeCluster("a").taint(notReady, noExecute, 100*time.Second), makeCluster("b").taint(unreachable, noExecute, 250*time.Second)),
			previous: targets("a", 0, "b", 0),
			want:     Result{Clusters: targets("a", 0, "b", 0), RecheckAfter: 50 * time.Second},
		},
		{
			name:     "default toleration runs out",
			clusters: clusters(makeCluster("a").taint(notReady, noExecute, 300*time.Second), makeCluster("b").taint(notReady, noExecute, 400*time.Second), makeCluster("c")),
			previous: targets("a", 0, "c", 0),
			want:     Result{Clusters: targets("c", 0), Evicted: []string{"a"}},
		},
		{
			name:     "taint without timeAdded counts from now",
			clusters: clusters(makeCluster("a").taint(notReady, noExecute, -1)),
			previous: targets("a", 0),
			want:     Result{Clusters: targets("a", 0)},
		},
		{
			name:      "tolerationSeconds",
			placement: v1alpha1.Placement{ClusterTolerations: []corev1.Toleration{tolerate(notReady, noExecute, 60)}},
			clusters:  clusters(makeCluster("a").taint(notReady, noExecute, 30*time.Second), makeCluster("b").taint(notReady, noExecute, 90*time.Second)),
			previous:  targets("a", 0, "b", 0),
			want:      Result{Clusters: targets("a", 0), RecheckAfter: 30 * time.Second, Evicted: []string{"b"}},
		},
		{
			name: "smallest tolerationSeconds wins",
			placement: v1alpha1.Placement{ClusterTolerations: []corev1.Toleration{
				tolerate(notReady, noExecute, 600), tolerate("", "", 10),
			}},
			clusters: clusters(makeCluster("a").taint(notReady, noExecute, 5*time.Second)),
			want:     Result{Clusters: targets("a", 0), RecheckAfter: 5 * time.Second},
		},
		{
			name:      "toleration without seconds tolerates for ever",
			placement: v1alpha1.Placement{ClusterTolerations: []corev1.Toleration{tolerate(notReady, ""), tolerate(notReady, noExecute, 1)}},
			clusters:  clusters(makeCluster("a").taint(notReady, noExecute, time.Hour)),
			want:      Result{Clusters: targets("a", 0)},
		},
		{
			name:      "a toleration for the key replaces the default",
			placement: v1alpha1.Placement{ClusterTolerations: []corev1.Toleration{tolerate(notReady, noExecute, 0)}},
			clusters:  clusters(makeCluster("a").taint(notReady, noExecute, 0), makeCluster("b")),
			previous:  targets("a", 0),
			want:      Result{Clusters: targets("b", 0), Evicted: []string{"a"}},
		},
		{
			name:     "eviction only of scheduled clusters",
			clusters: clusters(makeCluster("a").taint("dead", noExecute, 0), makeCluster("b")),
			want:     Result{Clusters: targets("b", 0)},
		},
		{
			name:     "affinity loss is not an eviction",
			clusters: clusters(makeCluster("a").taint("dead", noExecute, 0), makeCluster("b")),
			placement: v1alpha1.Placement{
				ClusterAffinity: names("b"),
			},
			previous: targets("a", 0),
			want:     Result{Clusters: targets("b", 0)},
		},

		// Replica division.
		{
			name:     "Duplicated by default",
			replicas: 3,
			clusters: abc(),
			want:     Result{Clusters: targets("a", 3, "b", 3, "c", 3)},
		},
		{
			name:      "Duplicated ignores capacity",
			placement: v1alpha1.Placement{ReplicaScheduling: &v1alpha1.ReplicaSchedulingStrategy{ReplicaSchedulingType: v1alpha1.Duplicated}},
			replicas:  3,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a"), makeCluster("b").cpus("1")),
			want:      Result{Clusters: targets("a", 3, "b", 3)},
		},
		{
			name:      "static weights 2:1",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, static("a", 2, "b", 1))},
			replicas:  3,
			clusters:  clusters(makeCluster("a"), makeCluster("b")),
			want:      Result{Clusters: targets("a", 2, "b", 1)},
		},
		{
			name:      "equal weights, remainder by name",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, nil)},
			replicas:  10,
			clusters:  abc(),
			want:      Result{Clusters: targets("a", 4, "b", 3, "c", 3)},
		},
		{
			name:      "equal weights keep the previous split",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, nil)},
			replicas:  10,
			clusters:  abc(),
			previous:  targets("a", 3, "b", 3, "c", 4),
			want:      Result{Clusters: targets("a", 3, "b", 3, "c", 4)},
		},
		{
			name:      "remainder to a scheduled cluster first",
			placement: v1alpha1.Placement{ReplicaScheduling: divided("", &v1alpha1.ClusterPreferences{})},
			replicas:  2,
			clusters:  abc(),
			previous:  targets("c", 1),
			want:      Result{Clusters: targets("a", 1, "c", 1)},
		},
		{
			name:      "empty type is Divided",
			placement: v1alpha1.Placement{ReplicaScheduling: &v1alpha1.ReplicaSchedulingStrategy{}},
			replicas:  4,
			clusters:  clusters(makeCluster("a"), makeCluster("b")),
			want:      Result{Clusters: targets("a", 2, "b", 2)},
		},
		{
			name:      "weight 0 gets nothing",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, static("a", 1, "c", 3))},
			replicas:  8,
			clusters:  abc(),
			want:      Result{Clusters: targets("a", 2, "c", 6)},
		},
		{
			name: "largest matching weight",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{StaticWeightList: []v1alpha1.StaticClusterWeight{
				{TargetCluster: v1alpha1.ClusterAffinity{}, Weight: 1},
				{TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{"b"}}, Weight: 3},
			}})},
			replicas: 8,
			clusters: clusters(makeCluster("a"), makeCluster("b")),
			want:     Result{Clusters: targets("a", 2, "b", 6)},
		},
		{
			name:      "no weight matches: equal weights",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, static("x", 5))},
			replicas:  2,
			clusters:  clusters(makeCluster("a"), makeCluster("b")),
			want:      Result{Clusters: targets("a", 1, "b", 1)},
		},
		{
			name:      "fewer replicas than clusters",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, nil)},
			replicas:  1,
			clusters:  abc(),
			want:      Result{Clusters: targets("a", 1)},
		},
		{
			name:      "dynamic weights",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas})},
			replicas:  3,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("4"), makeCluster("b").cpus("2"), makeCluster("c")),
			want:      Result{Clusters: targets("a", 2, "b", 1)},
		},
		{
			name:      "dynamic weights, on a scale, count the workload's own replicas",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas})},
			replicas:  8,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("4").allocated("cpu", "4"), makeCluster("b").cpus("4").allocated("cpu", "2")),
			previous:  targets("a", 4, "b", 2),
			want:      Result{Clusters: targets("a", 4, "b", 4)},
		},
		{
			// b has not started its 2 yet: dividing again would count them
			// twice (its previous share and its free capacity).
			name:      "a division by capacity is kept while the replicas and clusters stand",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas})},
			replicas:  6,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("4").allocated("cpu", "4"), makeCluster("b").cpus("4")),
			previous:  targets("a", 4, "b", 2),
			want:      Result{Clusters: targets("a", 4, "b", 2)},
		},
		{
			name:      "a failed-over cluster back divides by capacity anew",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas})},
			replicas:  6,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("6").allocated("cpu", "6"), makeCluster("b").cpus("6")),
			previous:  targets("a", 6),
			returning: []string{"b"},
			want:      Result{Clusters: targets("a", 3, "b", 3)},
		},
		{
			name:      "an aggregated division is kept too",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Aggregated, nil)},
			replicas:  6,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("2"), makeCluster("b").cpus("10"), makeCluster("c").cpus("5")),
			previous:  targets("c", 6),
			want:      Result{Clusters: targets("c", 6)},
		},
		{
			name:      "dynamic weights, not enough capacity",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas})},
			replicas:  5,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("1"), makeCluster("b").cpus("2"), makeCluster("c")),
			want:      Result{Unschedulable: "0/3 clusters have enough capacity: 3 available (a 1, b 2, c 0), 5 requested"},
		},
		{
			name:      "aggregated uses the fewest clusters",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Aggregated, nil)},
			replicas:  6,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("2"), makeCluster("b").cpus("10"), makeCluster("c").cpus("5")),
			want:      Result{Clusters: targets("b", 6)},
		},
		{
			name:      "aggregated spills over",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Aggregated, nil)},
			replicas:  13,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("2"), makeCluster("b").cpus("10"), makeCluster("c").cpus("5")),
			want:      Result{Clusters: targets("b", 10, "c", 3)},
		},
		{
			name:      "aggregated keeps scheduled clusters first",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Aggregated, nil)},
			replicas:  6,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("2").allocated("cpu", "2"), makeCluster("b").cpus("10")),
			previous:  targets("a", 2),
			want:      Result{Clusters: targets("a", 2, "b", 4)},
		},
		{
			name:      "aggregated, not enough capacity",
			placement: v1alpha1.Placement{ReplicaScheduling: divided(v1alpha1.Aggregated, nil)},
			replicas:  10,
			request:   cpu("1"),
			clusters:  clusters(makeCluster("a").cpus("2"), makeCluster("b").cpus("3").allocatable("pods", "1")),
			want:      Result{Unschedulable: "0/2 clusters have enough capacity: 3 available (a 2, b 1), 10 requested"},
		},

		// Spread constraints.
		{
			name: "maxGroups by cluster prefers scheduled, then name",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByFieldCluster, MaxGroups: 2},
			}},
			clusters: abc(),
			previous: targets("c", 0),
			want:     Result{Clusters: targets("a", 0, "c", 0)},
		},
		{
			name: "maxGroups by cluster prefers capacity for workloads",
			placement: v1alpha1.Placement{
				SpreadConstraints: []v1alpha1.SpreadConstraint{{SpreadByField: v1alpha1.SpreadByFieldCluster, MaxGroups: 2}},
				ReplicaScheduling: divided(v1alpha1.Weighted, nil),
			},
			replicas: 4,
			request:  cpu("1"),
			clusters: clusters(makeCluster("a").cpus("1"), makeCluster("b").cpus("8"), makeCluster("c").cpus("4")),
			want:     Result{Clusters: targets("b", 2, "c", 2)},
		},
		{
			name: "minGroups by cluster",
			placement: v1alpha1.Placement{
				ClusterAffinity:   names("a", "b"),
				SpreadConstraints: []v1alpha1.SpreadConstraint{{SpreadByField: v1alpha1.SpreadByFieldCluster, MinGroups: 3}},
			},
			clusters: abc(),
			want:     Result{Unschedulable: "0/3 clusters are eligible: 1 not in clusterAffinity, 2 eligible form 2 groups by cluster, minGroups is 3"},
		},
		{
			name: "maxGroups by region keeps the scheduled region",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByFieldRegion, MaxGroups: 1},
			}},
			clusters: clusters(makeCluster("a").region("eu"), makeCluster("b").region("us"), makeCluster("c").region("us")),
			previous: targets("c", 0),
			want:     Result{Clusters: targets("b", 0, "c", 0)},
		},
		{
			name: "region and cluster constraints together",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByFieldCluster, MaxGroups: 1},
				{SpreadByField: v1alpha1.SpreadByFieldRegion, MaxGroups: 1},
			}},
			clusters: clusters(makeCluster("a").region("eu"), makeCluster("b").region("us"), makeCluster("c").region("us")),
			previous: targets("c", 0),
			want:     Result{Clusters: targets("c", 0)},
		},
		{
			name: "minGroups by region",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByFieldRegion, MinGroups: 2},
			}},
			clusters: clusters(makeCluster("a").region("eu"), makeCluster("b").region("eu"), makeCluster("c").region("eu"), makeCluster("d").taint("k", noSchedule, 0)),
			want:     Result{Unschedulable: "0/4 clusters are eligible: 1 has untolerated taint k, 3 eligible form 1 group by region, minGroups is 2"},
		},
		{
			name: "spread by label drops clusters without it",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByLabel: "rack", MinGroups: 1, MaxGroups: 2},
			}},
			clusters: clusters(makeCluster("a").label("rack", "1"), makeCluster("b").label("rack", "2"), makeCluster("c").label("rack", "3"), makeCluster("d")),
			want:     Result{Clusters: targets("a", 0, "b", 0)},
		},
		{
			name: "spread by label, none has it",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByLabel: "rack", MaxGroups: 2},
			}},
			clusters: clusters(makeCluster("a"), makeCluster("b")),
			want:     Result{Unschedulable: "0/2 clusters are eligible: 2 have no label rack"},
		},
		{
			name: "a constraint without bounds does nothing",
			placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByFieldZone},
			}},
			clusters: clusters(makeCluster("a"), makeCluster("b").zone("z")),
			want:     Result{Clusters: targets("a", 0, "b", 0)},
		},
		{
			name: "provider groups by capacity for workloads",
			placement: v1alpha1.Placement{
				SpreadConstraints: []v1alpha1.SpreadConstraint{{SpreadByField: v1alpha1.SpreadByFieldProvider, MaxGroups: 1}},
				ReplicaScheduling: divided(v1alpha1.Aggregated, nil),
			},
			replicas: 5,
			request:  cpu("1"),
			clusters: clusters(makeCluster("a").provider("aws").cpus("4"), makeCluster("b").provider("gcp").cpus("3"), makeCluster("c").provider("gcp").cpus("3")),
			want:     Result{Clusters: targets("b", 3, "c", 2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{
				Placement:                 tt.placement,
				Replicas:                  tt.replicas,
				Request:                   tt.request,
				Clusters:                  tt.clusters,
				Previous:                  tt.previous,
				Returning:                 tt.returning,
				Now:                       now,
				DefaultNotReadyToleration: 300 * time.Second,
			}
			got := Schedule(in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Schedule =\n  %+v\nwant\n  %+v", got, tt.want)
			}
			if again := Schedule(in); !reflect.DeepEqual(again, got) {
				t.Errorf("Schedule is not deterministic: %+v, then %+v", got, again)
			}
		})
	}
}

// TestScheduleStable checks that re-running on the previous result changes
// nothing, for every division.
func TestScheduleStable(t *testing.T) {
	strategies := map[string]*v1alpha1.ReplicaSchedulingStrategy{
		"duplicated": nil,
		"weighted":   divided(v1alpha1.Weighted, nil),
		"static":     divided(v1alpha1.Weighted, static("a", 3, "b", 2, "c", 2)),
		"dynamic":    divided(v1alpha1.Weighted, &v1alpha1.ClusterPreferences{DynamicWeight: v1alpha1.AvailableReplicas}),
		"aggregated": divided(v1alpha1.Aggregated, nil),
	}
	for name, rs := range strategies {
		t.Run(name, func(t *testing.T) {
			cs := clusters(makeCluster("a").cpus("7"), makeCluster("b").cpus("5"), makeCluster("c").cpus("9"))
			in := Input{Placement: v1alpha1.Placement{ReplicaScheduling: rs}, Replicas: 11, Request: cpu("1"), Clusters: cs, Now: now}
			first := Schedule(in)
			if first.Unschedulable != "" {
				t.Fatal(first.Unschedulable)
			}
			// The replicas now run: they are allocated.
			for i := range cs {
				for _, tc := range first.Clusters {
					if tc.Name == cs[i].Name && rs != nil {
						q := cpu("0")[corev1.ResourceCPU]
						q.Set(int64(tc.Replicas))
						cs[i].Status.ResourceSummary.Allocated = corev1.ResourceList{corev1.ResourceCPU: q}
					}
				}
			}
			in.Previous = first.Clusters
			if second := Schedule(in); !reflect.DeepEqual(second, first) {
				t.Errorf("re-run moved replicas: %+v, then %+v", first.Clusters, second.Clusters)
			}
		})
	}
}
