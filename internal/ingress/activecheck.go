package ingress

import (
	"context"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The annotations of a Service that turn on active health checks of its
// endpoints, for every Ingress and Gateway route leading to it.
const (
	AnnHealthCheckPath     = "skiff.dev/health-check-path"
	AnnHealthCheckInterval = "skiff.dev/health-check-interval"
)

// Active health check settings: an endpoint is taken out after
// activeFall failed probes in a row and back in after activeRise good ones;
// a probe is an HTTP GET answered 2xx or 3xx within activeTimeout.
const (
	DefaultCheckInterval = 5 * time.Second
	minCheckInterval     = 100 * time.Millisecond
	activeFall           = 3
	activeRise           = 2
	activeTimeout        = 2 * time.Second
)

// ActiveCheck is a Service's active health check.
type ActiveCheck struct {
	Path     string
	Interval time.Duration
}

// activeCheckOf reads a Service's health-check annotations; an interval
// that does not parse, or is under 100 ms, is the default.
func activeCheckOf(svc *corev1.Service) (ActiveCheck, bool) {
	path := svc.Annotations[AnnHealthCheckPath]
	if path == "" {
		return ActiveCheck{}, false
	}
	if path[0] != '/' {
		path = "/" + path
	}
	c := ActiveCheck{Path: path, Interval: DefaultCheckInterval}
	if d, err := time.ParseDuration(svc.Annotations[AnnHealthCheckInterval]); err == nil && d >= minCheckInterval {
		c.Interval = d
	}
	return c, true
}

// probeState is one endpoint's run of probe results.
type probeState struct {
	next       time.Time
	oks, fails int
	down       bool
}

// RunHealthChecks probes, until ctx ends, the endpoints of every Service
// of the current table that asks for an active health check, and takes
// failing ones out of balancing (Health.SetActive).
func (p *Proxy) RunHealthChecks(ctx context.Context) {
	client := &http.Client{
		Timeout:   activeTimeout,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: p.upstream.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	states := map[string]*probeState{}
	tick := time.NewTicker(minCheckInterval)
	defer tick.Stop()
	for {
		var checks map[string]ActiveCheck
		if t := p.Table(); t != nil {
			checks = t.checks
		}
		for addr, s := range states {
			if _, ok := checks[addr]; !ok {
				delete(states, addr)
				if s.down {
					p.health.SetActive(addr, true)
				}
			}
		}
		if len(checks) == 0 {
			// Nothing to probe: sleep until a table names a check,
			// without waking every tick.
			tick.Stop()
			select {
			case <-ctx.Done():
				return
			case <-p.tableSet.C():
			}
			tick.Reset(minCheckInterval)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.tableSet.C(): // a new table: prune and probe what it names
		}
		now := time.Now()
		results := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for addr, chk := range checks {
			s := states[addr]
			if s == nil {
				s = &probeState{}
				states[addr] = s
			}
			if now.Before(s.next) {
				continue
			}
			s.next = now.Add(chk.Interval)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok := probe(ctx, client, addr, chk.Path)
				mu.Lock()
				results[addr] = ok
				mu.Unlock()
			}()
		}
		wg.Wait()
		for addr, ok := range results {
			p.record(addr, states[addr], ok)
		}
	}
}

// record adds one probe result to s and moves the endpoint in or out.
func (p *Proxy) record(addr string, s *probeState, ok bool) {
	if ok {
		s.fails = 0
		s.oks++
		if s.down && s.oks >= activeRise {
			s.down = false
			p.health.SetActive(addr, true)
			p.cfg.Log.Info("endpoint passes its health check again", "endpoint", addr)
		}
		return
	}
	s.oks = 0
	s.fails++
	if !s.down && s.fails >= activeFall {
		s.down = true
		p.health.SetActive(addr, false)
		p.cfg.Log.Warn("endpoint fails its health check; taken out of balancing", "endpoint", addr, "failures", s.fails)
	}
}

func probe(ctx context.Context, client *http.Client, addr, path string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "skiff-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
