package dns

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func answerMsg(rcode int, answer, ns []string) *dns.Msg {
	m := new(dns.Msg)
	m.Rcode = rcode
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, mustRR(s))
	}
	return m
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

const exampleSOA = "example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 7200 900 1209600 60"

func TestCacheTTL(t *testing.T) {
	truncated := answerMsg(dns.RcodeSuccess, []string{"a.example. 60 IN A 1.2.3.4"}, nil)
	truncated.Truncated = true
	for _, tc := range []struct {
		name string
		msg  *dns.Msg
		ttl  time.Duration
		ok   bool
	}{
		{"smallest answer TTL", answerMsg(dns.RcodeSuccess, []string{"a.example. 60 IN CNAME b.example.", "b.example. 30 IN A 1.2.3.4"}, nil), 30 * time.Second, true},
		{"authority counts too", answerMsg(dns.RcodeSuccess, []string{"a.example. 60 IN A 1.2.3.4"}, []string{"example. 20 IN NS ns.example."}), 20 * time.Second, true},
		{"capped at an hour", answerMsg(dns.RcodeSuccess, []string{"a.example. 86400 IN A 1.2.3.4"}, nil), time.Hour, true},
		{"NXDOMAIN: the SOA's minimum", answerMsg(dns.RcodeNameError, nil, []string{exampleSOA}), 60 * time.Second, true},
		{"NODATA: SOA TTL when smaller", answerMsg(dns.RcodeSuccess, nil, []string{"example.com. 10 IN SOA ns.example.com. admin.example.com. 1 7200 900 1209600 60"}), 10 * time.Second, true},
		{"negative capped at 5 minutes", answerMsg(dns.RcodeNameError, nil, []string{"example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 7200 900 1209600 3600"}), 5 * time.Minute, true},
		{"negative without SOA", answerMsg(dns.RcodeNameError, nil, nil), 0, false},
		{"SERVFAIL", answerMsg(dns.RcodeServerFailure, nil, nil), 0, false},
		{"truncated", truncated, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ttl, ok := cacheTTL(tc.msg)
			if ttl != tc.ttl || ok != tc.ok {
				t.Errorf("cacheTTL = %v, %v; want %v, %v", ttl, ok, tc.ttl, tc.ok)
			}
		})
	}
}

func TestCacheAges(t *testing.T) {
	c := newAnswerCache(10)
	t0 := time.Unix(1000, 0)
	q := dns.Question{Name: "A.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	c.put(cacheKey(q, false), answerMsg(dns.RcodeSuccess, []string{"a.example. 30 IN A 1.2.3.4"}, nil), t0)

	lower := dns.Question{Name: "a.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	if m := c.get(cacheKey(lower, true), t0); m != nil {
		t.Error("an answer without DNSSEC served a DO question")
	}
	m := c.get(cacheKey(lower, false), t0.Add(12*time.Second))
	if m == nil {
		t.Fatal("not cached (names differ in case only)")
	}
	if got := rrStrings(m.Answer); !slices.Equal(got, []string{"a.example. 18 IN A 1.2.3.4"}) {
		t.Errorf("after 12 s: %q", got)
	}
	m.Answer[0].Header().Ttl = 999 // a copy: the cache keeps its own
	if m := c.get(cacheKey(lower, false), t0.Add(29*time.Second)); m == nil || m.Answer[0].Header().Ttl != 1 {
		t.Errorf("after 29 s: %v", m)
	}
	if m := c.get(cacheKey(lower, false), t0.Add(30*time.Second)); m != nil {
		t.Errorf("served after its TTL: %v", m)
	}
	if c.len() != 0 {
		t.Errorf("expired entry kept")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newAnswerCache(3)
	t0 := time.Unix(1000, 0)
	put := func(i, ttl int, at time.Time) {
		name := fmt.Sprintf("n%d.example.", i)
		c.put(cacheKey(dns.Question{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}, false),
			answerMsg(dns.RcodeSuccess, []string{fmt.Sprintf("%s %d IN A 1.2.3.4", name, ttl)}, nil), at)
	}
	has := func(i int, at time.Time) bool {
		return c.get(cacheKey(dns.Question{Name: fmt.Sprintf("n%d.example.", i), Qtype: dns.TypeA, Qclass: dns.ClassINET}, false), at) != nil
	}
	put(1, 5, t0)
	put(2, 60, t0)
	put(3, 60, t0)
	// Full: the expired n1 makes room.
	put(4, 60, t0.Add(10*time.Second))
	if c.len() != 3 || !has(2, t0) || !has(3, t0) || !has(4, t0) {
		t.Errorf("expired entry not evicted first")
	}
	// Full of live entries: one goes.
	put(5, 60, t0)
	if c.len() != 3 || !has(5, t0) {
		t.Errorf("cache holds %d entries, want 3 with n5", c.len())
	}
}

func TestUpstreamsFrom(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mixed := file("mixed", "search example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver 2001:db8::1\noptions ndots:2\n")
	stub := file("stub", "nameserver 127.0.0.53\n")
	real := file("real", "nameserver 198.51.100.7\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name  string
		files []string
		want  []string
	}{
		{"loopback stubs left out", []string{mixed}, []string{"192.0.2.1:53", "[2001:db8::1]:53"}},
		{"systemd-resolved's real list after a stub", []string{stub, real}, []string{"198.51.100.7:53"}},
		{"the stub when nothing else", []string{stub, missing}, []string{"127.0.0.53:53"}},
		{"no file", []string{missing}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := upstreamsFrom(tc.files...); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
