package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"
)

// Usage history: the CPU and memory of every node and pod over the last
// hour, sampled from metrics.k8s.io every UsageInterval and kept in memory
// (nothing is written anywhere; a restarted server starts afresh), for the
// page's charts. The memory is bounded: usageSlots samples of 8 bytes per
// node or pod, at most maxPodSeries pods (about 20 MB at worst).
const (
	// UsageInterval is how often usage is sampled: every other scrape of
	// metrics-server (15 s).
	UsageInterval = 30 * time.Second
	usageSlots    = int(time.Hour / UsageInterval)
	// maxPodSeries bounds the pods followed; more are left without a chart
	// until some of those followed are gone for an hour.
	maxPodSeries = 20000
)

// Usage is one node's or pod's use at a sample.
type Usage struct {
	CPU    float64 // cores
	Memory float64 // bytes
}

// point is a stored Usage: millicores and KiB, noValue when the object had
// no figures at that sample.
type point struct{ cpu, mem uint32 }

const noValue = math.MaxUint32

type series struct {
	values   [usageSlots]point
	lastSeen int // the sample that last had a value
}

// History is the usage of nodes and pods over the last usageSlots samples.
type History struct {
	mu    sync.Mutex         // guards the following
	taken int                // samples recorded so far; the next goes to slot taken % usageSlots
	times [usageSlots]int64  // when each slot's sample was taken (unix seconds)
	nodes map[string]*series // by node name
	pods  map[string]*series // by "namespace/name"
	full  int                // objects left out at the last sample (maxPodSeries reached)
}

// NewHistory returns an empty History.
func NewHistory() *History {
	return &History{nodes: map[string]*series{}, pods: map[string]*series{}}
}

func toPoint(u Usage) point {
	clamp := func(v float64) uint32 {
		if v < 0 || math.IsNaN(v) {
			return 0
		}
		if v >= noValue-1 {
			return noValue - 1
		}
		return uint32(v)
	}
	return point{cpu: clamp(math.Round(u.CPU * 1000)), mem: clamp(math.Round(u.Memory / 1024))}
}

// Record adds the sample taken at t: the usage of nodes (by name) and of
// pods (by "namespace/name"). Objects not in it have no value at t; those
// without a value for a whole hour are forgotten.
func (h *History) Record(t time.Time, nodes, pods map[string]Usage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	slot := h.taken % usageSlots
	h.times[slot] = t.Unix()
	h.full = record(h.nodes, nodes, slot, h.taken, math.MaxInt) + record(h.pods, pods, slot, h.taken, maxPodSeries)
	h.taken++
}

// record writes one sample of one kind into all, returning how many objects
// it left out for want of room.
func record(all map[string]*series, sample map[string]Usage, slot, n, limit int) (left int) {
	for key, s := range all {
		if u, ok := sample[key]; ok {
			s.values[slot] = toPoint(u)
			s.lastSeen = n
		} else if n-s.lastSeen >= usageSlots {
			delete(all, key)
		} else {
			s.values[slot] = point{noValue, noValue}
		}
	}
	for key, u := range sample {
		if _, ok := all[key]; ok {
			continue
		}
		if len(all) >= limit {
			left++
			continue
		}
		s := &series{lastSeen: n}
		for i := range s.values {
			s.values[i] = point{noValue, noValue}
		}
		s.values[slot] = toPoint(u)
		all[key] = s
	}
	return left
}

// UsageReply is what the page's charts read: the sample times, oldest
// first, and for each object its values at those times (null: no figures).
type UsageReply struct {
	IntervalSeconds float64       `json:"intervalSeconds"`
	Times           []int64       `json:"times"`
	Series          []UsageSeries `json:"series"`
	// UntrackedPods counts the pods left without a history at the last
	// sample (the bound on pods followed was reached).
	UntrackedPods int `json:"untrackedPods,omitempty"`
}

// UsageSeries is one object's usage over UsageReply.Times.
type UsageSeries struct {
	Namespace string     `json:"namespace,omitempty"`
	Name      string     `json:"name"`
	CPU       []*float64 `json:"cpu"`    // cores
	Memory    []*float64 `json:"memory"` // bytes
}

// Query returns the history of nodes (pods false) or of the pods in
// namespace ("" for every namespace), of the one named name if it is set.
func (h *History) Query(pods bool, namespace, name string) UsageReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := min(h.taken, usageSlots)
	first := h.taken - n
	reply := UsageReply{IntervalSeconds: UsageInterval.Seconds(), Times: make([]int64, n), Series: []UsageSeries{}}
	for i := range n {
		reply.Times[i] = h.times[(first+i)%usageSlots]
	}
	all := h.nodes
	if pods {
		all = h.pods
		reply.UntrackedPods = h.full
	}
	for key, s := range all {
		ns, obj := "", key
		if pods {
			for i := range key {
				if key[i] == '/' {
					ns, obj = key[:i], key[i+1:]
					break
				}
			}
			if namespace != "" && ns != namespace {
				continue
			}
		}
		if name != "" && obj != name {
			continue
		}
		out := UsageSeries{Namespace: ns, Name: obj, CPU: make([]*float64, n), Memory: make([]*float64, n)}
		for i := range n {
			p := s.values[(first+i)%usageSlots]
			if p.cpu == noValue {
				continue
			}
			c, m := float64(p.cpu)/1000, float64(p.mem)*1024
			out.CPU[i], out.Memory[i] = &c, &m
		}
		reply.Series = append(reply.Series, out)
	}
	sort.Slice(reply.Series, func(i, j int) bool {
		a, b := reply.Series[i], reply.Series[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return reply
}

// UsageSource reads the current usage of every node and pod
// (metrics.k8s.io).
type UsageSource interface {
	NodeUsage(ctx context.Context) (map[string]Usage, error)
	PodUsage(ctx context.Context) (map[string]Usage, error)
}

// Sample records src's usage into h every UsageInterval until ctx ends. A
// failed read (metrics.k8s.io not yet available) leaves that sample without
// values for the kind that failed, and is logged once until reads succeed
// again.
func (h *History) Sample(ctx context.Context, src UsageSource, log *slog.Logger) error {
	tick := time.NewTicker(UsageInterval)
	defer tick.Stop()
	failing := false
	for {
		nodes, errN := src.NodeUsage(ctx)
		pods, errP := src.PodUsage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch err := errors.Join(errN, errP); {
		case err != nil && !failing:
			log.Info("usage history: metrics.k8s.io not readable; charts wait for it", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("usage history: metrics.k8s.io readable again")
			failing = false
		}
		h.Record(time.Now(), nodes, pods)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
