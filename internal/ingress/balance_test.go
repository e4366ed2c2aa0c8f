package ingress

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// endpoints makes n endpoints 10.0.0.1:80 … with weight 1.
func endpoints(n int) []Endpoint {
	var eps []Endpoint
	for i := range n {
		eps = append(eps, Endpoint{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), Weight: 1})
	}
	return eps
}

func candidates(eps []Endpoint, inFlight ...int64) []Candidate {
	var cs []Candidate
	for i, e := range eps {
		c := Candidate{Endpoint: e}
		if i < len(inFlight) {
			c.InFlight = inFlight[i]
		}
		cs = append(cs, c)
	}
	return cs
}

func seeded() rand.Source { return rand.NewPCG(1, 2) }

// counts picks n times and tallies the chosen indexes.
func counts(b Balancer, cands []Candidate, n int) []int {
	got := make([]int, len(cands))
	for range n {
		got[b.Pick(cands, "")]++
	}
	return got
}

// near tells whether got/n is within tol of want.
func near(got, n int, want, tol float64) bool {
	return math.Abs(float64(got)/float64(n)-want) <= tol
}

func TestRoundRobin(t *testing.T) {
	b := NewBalancer(RoundRobin, nil, seeded())
	cands := candidates(endpoints(4))
	var seq []int
	for range 8 {
		seq = append(seq, b.Pick(cands, ""))
	}
	if want := []int{0, 1, 2, 3, 0, 1, 2, 3}; !slices.Equal(seq, want) {
		t.Errorf("sequence %v, want %v", seq, want)
	}

	// Weights 1, 2, 3: exact shares over whole cycles, spread within each.
	weighted := candidates(endpoints(3))
	for i := range weighted {
		weighted[i].Weight = i + 1
	}
	wb := NewBalancer(RoundRobin, nil, seeded())
	if got := counts(wb, weighted, 600); !slices.Equal(got, []int{100, 200, 300}) {
		t.Errorf("weighted counts %v, want [100 200 300]", got)
	}
	seq = seq[:0]
	for range 6 {
		seq = append(seq, wb.Pick(weighted, ""))
	}
	if want := []int{2, 1, 0, 2, 1, 2}; !slices.Equal(seq, want) {
		t.Errorf("weighted cycle %v, want the smooth order %v", seq, want)
	}

	// An endpoint leaving keeps the rotation over the rest.
	if got := counts(b, cands[1:], 300); !slices.Equal(got, []int{100, 100, 100}) {
		t.Errorf("after removal counts %v, want [100 100 100]", got)
	}
}

func TestLeastConnections(t *testing.T) {
	b := NewBalancer(LeastConnections, nil, seeded())
	cands := candidates(endpoints(4), 3, 1, 1, 5)
	if got := counts(b, cands, 100); !slices.Equal(got, []int{0, 50, 50, 0}) {
		t.Errorf("counts %v, want the two least loaded alternating: [0 50 50 0]", got)
	}
	// Load is per weight: 4 in flight on weight 2 beats 3 on weight 1.
	w := candidates(endpoints(2), 4, 3)
	w[0].Weight = 2
	if got := counts(b, w, 10); !slices.Equal(got, []int{10, 0}) {
		t.Errorf("weighted counts %v, want [10 0]", got)
	}
}

func TestLeastRequest(t *testing.T) {
	const n = 60000
	b := NewBalancer(LeastRequest, nil, seeded())
	// The idle endpoint wins whenever drawn, which is in half of the
	// C(4,2) = 6 pairs; each busy one wins only the pair of two busy
	// ones where it is drawn first: 1/6.
	got := counts(b, candidates(endpoints(4), 0, 10, 10, 10), n)
	for i, want := range []float64{1.0 / 2, 1.0 / 6, 1.0 / 6, 1.0 / 6} {
		if !near(got[i], n, want, 0.01) {
			t.Errorf("endpoint %d got %d of %d, want share %.3f", i, got[i], n, want)
		}
	}
	// Equal load: uniform.
	got = counts(b, candidates(endpoints(4)), n)
	for i := range got {
		if !near(got[i], n, 0.25, 0.01) {
			t.Errorf("equal load: endpoint %d got %d of %d, want 1/4", i, got[i], n)
		}
	}
	if got := b.Pick(candidates(endpoints(1), 9), ""); got != 0 {
		t.Errorf("single candidate: picked %d", got)
	}
}

func TestRandom(t *testing.T) {
	const n = 60000
	b := NewBalancer(Random, nil, seeded())
	cands := candidates(endpoints(3))
	cands[2].Weight = 2
	got := counts(b, cands, n)
	for i, want := range []float64{0.25, 0.25, 0.5} {
		if !near(got[i], n, want, 0.01) {
			t.Errorf("endpoint %d got %d of %d, want share %.2f", i, got[i], n, want)
		}
	}
}

func TestConsistentHash(t *testing.T) {
	const keys = 10000
	four, five := endpoints(4), endpoints(5)
	pickAll := func(eps []Endpoint, cands []Candidate) map[string]netip.AddrPort {
		b := NewBalancer(ConsistentHash, eps, seeded())
		out := map[string]netip.AddrPort{}
		for k := range keys {
			key := fmt.Sprintf("user-%d", k)
			out[key] = cands[b.Pick(cands, key)].Addr
		}
		return out
	}
	before := pickAll(four, candidates(four))
	share := map[netip.AddrPort]int{}
	for _, a := range before {
		share[a]++
	}
	for _, e := range four {
		if !near(share[e.Addr], keys, 0.25, 0.08) {
			t.Errorf("%s owns %d of %d keys, want about a quarter", e, share[e.Addr], keys)
		}
	}

	// Adding a fifth endpoint moves only keys to it, about a fifth of them.
	after := pickAll(five, candidates(five))
	moved := 0
	for k, a := range before {
		if after[k] != a {
			moved++
			if after[k] != five[4].Addr {
				t.Fatalf("key %s moved from %s to %s, not to the new endpoint", k, a, after[k])
			}
		}
	}
	if float64(moved)/keys >= 0.30 || moved == 0 {
		t.Errorf("%d of %d keys moved, want about 20%% and under 30%%", moved, keys)
	}

	// An endpoint left out of the candidates (ejected) moves only its keys.
	without := pickAll(four, candidates(four)[1:])
	for k, a := range before {
		if a != four[0].Addr && without[k] != a {
			t.Fatalf("key %s moved from %s to %s though its endpoint is still there", k, a, without[k])
		}
	}

	// The same key always lands on the same endpoint.
	b := NewBalancer(ConsistentHash, four, seeded())
	cands := candidates(four)
	first := b.Pick(cands, "alice")
	for range 100 {
		if got := b.Pick(cands, "alice"); got != first {
			t.Fatalf("key alice went to %d then %d", first, got)
		}
	}
	// No key: spread at random.
	if got := counts(b, cands, 4000); slices.Contains(got, 0) {
		t.Errorf("keyless picks %v, want all endpoints used", got)
	}
}
