package dns

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds of the forwarder's cache: how long an answer may be kept, whatever
// its TTL says, and how many are kept at most.
const (
	maxPositiveTTL = time.Hour
	maxNegativeTTL = 5 * time.Minute
	cacheSize      = 10000
)

// answerCache keeps upstream answers until their TTL runs out. Time is
// passed in, so tests need no clock.
type answerCache struct {
	max int

	mu      sync.Mutex // guards entries
	entries map[string]cacheEntry
}

type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, entries: map[string]cacheEntry{}}
}

// cacheKey names a question; answers with DNSSEC records (DO) and without
// are kept apart.
func cacheKey(q dns.Question, do bool) string {
	return strings.ToLower(q.Name) + "/" + strconv.Itoa(int(q.Qtype)) + "/" + strconv.Itoa(int(q.Qclass)) + "/" + strconv.FormatBool(do)
}

// get returns a copy of the answer stored under key with its TTLs lowered by
// the time it spent in the cache, or nil.
func (c *answerCache) get(key string, now time.Time) *dns.Msg {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(h.Ttl, age)
			}
		}
	}
	return m
}

// put stores m under key for as long as its TTLs allow; answers that must not
// be cached (failures, truncated ones, TTL 0) are ignored. When the cache is
// full, expired answers go first, then arbitrary ones.
func (c *answerCache) put(key string, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok || ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{msg: m.Copy(), stored: now, expires: now.Add(ttl)}
}

// cacheTTL is how long m may be cached: the smallest TTL of its answer and
// authority records, or for a negative answer the SOA's (RFC 2308), within
// the cache's bounds.
func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	if m.Truncated || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return 0, false
	}
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
		ttl := ^uint32(0)
		for _, rr := range append(append([]dns.RR(nil), m.Answer...), m.Ns...) {
			ttl = min(ttl, rr.Header().Ttl)
		}
		return min(time.Duration(ttl)*time.Second, maxPositiveTTL), true
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(soa.Hdr.Ttl, soa.Minttl)
			return min(time.Duration(ttl)*time.Second, maxNegativeTTL), true
		}
	}
	return 0, false
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
