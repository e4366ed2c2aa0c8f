package gctune

import "testing"

func TestObserve(t *testing.T) {
	s := &state{cfg: Config{IdlePercent: 25, BusyPercent: 100, IdleRate: 10, IdleSamples: 3}, percent: -1}
	steps := []struct {
		rate    float64
		want    int
		changed bool
	}{
		{1, 100, true},   // first sample: not idle long enough yet
		{1, 100, false},  //
		{1, 25, true},    // third idle sample
		{1, 25, false},   //
		{50, 100, true},  // one busy sample is enough
		{1, 100, false},  // idle again, counting anew
		{1, 100, false},  //
		{10, 100, false}, // at the threshold is busy
		{1, 100, false},
		{1, 100, false},
		{1, 25, true},
	}
	for i, st := range steps {
		got, changed := s.observe(st.rate)
		if got != st.want || changed != st.changed {
			t.Errorf("step %d (rate %v): %d, %v; want %d, %v", i, st.rate, got, changed, st.want, st.changed)
		}
	}
}
