package placement

import (
	"fmt"
	"testing"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

func quarter(_ string, t int32) int32 { return (t + 3) / 4 }

func TestRamp(t *testing.T) {
	cases := []struct {
		name             string
		target, previous []v1alpha1.TargetCluster
		returning        map[string]bool
		want             string
		done             string
	}{
		{
			name:   "first step: a quarter back, the rest stays on the clusters that took it",
			target: targets("a", 4, "b", 2, "c", 6), previous: targets("a", 6, "c", 6), // b failed over: its 2 went to a
			returning: map[string]bool{"b": true},
			want:      "[{a 5} {b 1} {c 6}]", done: "map[]",
		},
		{
			name:   "last step reaches the target",
			target: targets("a", 4, "b", 2, "c", 6), previous: targets("a", 5, "b", 1, "c", 6),
			returning: map[string]bool{"b": true},
			want:      "[{a 4} {b 2} {c 6}]", done: "map[b:true]",
		},
		{
			name:   "a large share returns in four steps; the biggest surplus keeps the rest",
			target: targets("a", 10, "b", 10, "c", 10), previous: targets("a", 12, "c", 18),
			returning: map[string]bool{"b": true},
			want:      "[{a 10} {b 3} {c 17}]", done: "map[]",
		},
		{
			name:   "scaled meanwhile: no surplus anywhere, the share returns at once",
			target: targets("a", 4, "b", 4), previous: targets("a", 4),
			returning: map[string]bool{"b": true},
			want:      "[{a 4} {b 4}]", done: "map[b:true]",
		},
		{
			name:   "a cluster not returning is left as scheduled",
			target: targets("a", 3, "b", 3), previous: targets("a", 2, "b", 4),
			returning: map[string]bool{},
			want:      "[{a 3} {b 3}]", done: "map[]",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, done := Ramp(c.target, c.previous, c.returning, quarter)
			var s []string
			total, want := int32(0), int32(0)
			for _, g := range got {
				s = append(s, fmt.Sprintf("{%s %d}", g.Name, g.Replicas))
				total += g.Replicas
			}
			for _, g := range c.target {
				want += g.Replicas
			}
			if fmt.Sprint(s) != c.want || fmt.Sprint(done) != c.done {
				t.Errorf("got %v done %v, want %s done %s", s, done, c.want, c.done)
			}
			if total != want {
				t.Errorf("total %d, want %d", total, want)
			}
		})
	}
}
