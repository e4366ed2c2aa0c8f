package ingress

import (
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
)

// Candidate is an endpoint a balancer may pick, with its current load.
type Candidate struct {
	Endpoint
	// InFlight is the number of requests the proxy has open to it.
	InFlight int64
}

// Balancer picks an endpoint for each request. Implementations are safe for
// concurrent use.
type Balancer interface {
	// Pick returns the index in cands (never empty) of the endpoint to use.
	// key is the request's consistent-hash key; the other algorithms
	// ignore it.
	Pick(cands []Candidate, key string) int
}

// NewBalancer returns a balancer of the given algorithm. endpoints is the
// backend's full set, over which a consistent-hash ring is laid; src is the
// randomness of the random algorithms.
func NewBalancer(alg Algorithm, endpoints []Endpoint, src rand.Source) Balancer {
	r := &lockedRand{r: rand.New(src)}
	switch alg {
	case LeastConnections:
		return &leastConnections{}
	case LeastRequest:
		return &leastRequest{rand: r}
	case Random:
		return &random{rand: r}
	case ConsistentHash:
		return newRing(endpoints, r)
	default:
		return &roundRobin{current: map[netip.AddrPort]int{}}
	}
}

// lockedRand serializes a rand.Rand, which is not safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex // guards r
	r  *rand.Rand
}

func (l *lockedRand) intN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) uint64() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Uint64()
}

func weight(c Candidate) int { return max(c.Weight, 1) }

// weightedIndex picks an index of cands with probability proportional to
// its weight.
func weightedIndex(r *lockedRand, cands []Candidate) int {
	total := 0
	for _, c := range cands {
		total += weight(c)
	}
	n := r.intN(total)
	for i, c := range cands {
		if n -= weight(c); n < 0 {
			return i
		}
	}
	return len(cands) - 1
}

// roundRobin is smooth weighted round robin: every pick adds each
// candidate's weight to its running score, takes the highest score and
// subtracts the total weight from it. Equal weights give a plain rotation.
type roundRobin struct {
	mu      sync.Mutex // guards current
	current map[netip.AddrPort]int
}

func (b *roundRobin) Pick(cands []Candidate, _ string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.current) > len(cands) {
		// Forget endpoints that left.
		keep := make(map[netip.AddrPort]int, len(cands))
		for _, c := range cands {
			keep[c.Addr] = b.current[c.Addr]
		}
		b.current = keep
	}
	total, best := 0, 0
	for i, c := range cands {
		w := weight(c)
		total += w
		b.current[c.Addr] += w
		if b.current[c.Addr] > b.current[cands[best].Addr] {
			best = i
		}
	}
	b.current[cands[best].Addr] -= total
	return best
}

// lighter tells whether a carries less load per weight than b.
func lighter(a, b Candidate) bool {
	return a.InFlight*int64(weight(b)) < b.InFlight*int64(weight(a))
}

// leastConnections picks the candidate with the fewest in-flight requests
// per weight; ties go round robin.
type leastConnections struct {
	mu   sync.Mutex // guards next
	next int
}

func (b *leastConnections) Pick(cands []Candidate, _ string) int {
	tied := []int{0}
	for i := 1; i < len(cands); i++ {
		switch {
		case lighter(cands[i], cands[tied[0]]):
			tied = append(tied[:0], i)
		case !lighter(cands[tied[0]], cands[i]):
			tied = append(tied, i)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	return tied[b.next%len(tied)]
}

// leastRequest is "power of two choices": two distinct candidates drawn at
// random (by weight), the one with fewer in-flight requests per weight wins.
type leastRequest struct{ rand *lockedRand }

func (b *leastRequest) Pick(cands []Candidate, _ string) int {
	if len(cands) == 1 {
		return 0
	}
	i := weightedIndex(b.rand, cands)
	rest := slices.Delete(slices.Clone(cands), i, i+1)
	j := weightedIndex(b.rand, rest)
	if j >= i {
		j++
	}
	if lighter(cands[j], cands[i]) {
		return j
	}
	return i
}

// random picks a candidate with probability proportional to its weight.
type random struct{ rand *lockedRand }

func (b *random) Pick(cands []Candidate, _ string) int { return weightedIndex(b.rand, cands) }

// VirtualNodes is how many points each unit of weight puts on a
// consistent-hash ring.
const VirtualNodes = 100

type point struct {
	hash uint64
	addr netip.AddrPort
}

// ring is consistent hashing: each endpoint owns VirtualNodes×weight points
// on a 64-bit circle; a key goes to the first point at or after its hash
// whose endpoint is a candidate. Adding or removing an endpoint moves only
// the keys of the arcs it gains or loses. An empty key is placed at random.
type ring struct {
	points []point
	rand   *lockedRand
}

func newRing(endpoints []Endpoint, r *lockedRand) *ring {
	g := &ring{rand: r}
	for _, e := range endpoints {
		s := e.Addr.String() + "#"
		for v := range VirtualNodes * max(e.Weight, 1) {
			g.points = append(g.points, point{hash: hashKey(s + strconv.Itoa(v)), addr: e.Addr})
		}
	}
	slices.SortFunc(g.points, func(a, b point) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return a.addr.Compare(b.addr)
	})
	return g
}

func (g *ring) Pick(cands []Candidate, key string) int {
	if key == "" || len(g.points) == 0 {
		return weightedIndex(g.rand, cands)
	}
	idx := make(map[netip.AddrPort]int, len(cands))
	for i, c := range cands {
		idx[c.Addr] = i
	}
	h := hashKey(key)
	start, _ := slices.BinarySearchFunc(g.points, h, func(p point, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	for k := range g.points {
		if i, ok := idx[g.points[(start+k)%len(g.points)].addr]; ok {
			return i
		}
	}
	// No candidate is on the ring (endpoints outside the backend's set).
	return weightedIndex(g.rand, cands)
}

// hashKey is FNV-1a, finished with a 64-bit mixer so that near-identical
// inputs ("addr#1", "addr#2") spread over the whole circle. It is stable
// across processes, so every node hashes a key alike.
func hashKey(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	x := f.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// weightedPicker spreads a rule's requests over its backends by weight,
// with smooth weighted round robin: over any window of total-weight picks
// each backend gets exactly its share, interleaved.
type weightedPicker struct {
	mu      sync.Mutex
	weights []int
	current []int
	total   int
}

func newWeightedPicker(bs []WeightedBackend) *weightedPicker {
	p := &weightedPicker{weights: make([]int, len(bs)), current: make([]int, len(bs))}
	for i, b := range bs {
		p.weights[i] = b.Weight
		p.total += b.Weight
	}
	return p
}

// pick returns the index of the next backend; -1 when there is none.
func (p *weightedPicker) pick() int {
	if p == nil || p.total == 0 {
		return -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	for i, w := range p.weights {
		p.current[i] += w
		if best < 0 || p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= p.total
	return best
}
