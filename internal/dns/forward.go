package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
	"k8s.io/utils/clock"
)

// upstreamTimeout bounds one exchange with one upstream resolver.
const upstreamTimeout = 2 * time.Second

// upstreamBufSize is the EDNS0 buffer size offered to upstreams: the DNS
// flag day 2020 value, which avoids IP fragmentation.
const upstreamBufSize = 1232

// forwarder sends questions outside the cluster domain to the upstream
// resolvers, in order until one answers, through a cache.
type forwarder struct {
	upstreams []string // host:port
	cache     *answerCache
	clock     clock.PassiveClock
	udp, tcp  *dns.Client
}

func newForwarder(upstreams []string, clk clock.PassiveClock) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		cache:     newAnswerCache(cacheSize),
		clock:     clk,
		udp:       &dns.Client{Net: "udp", Timeout: upstreamTimeout, UDPSize: upstreamBufSize},
		tcp:       &dns.Client{Net: "tcp", Timeout: upstreamTimeout},
	}
}

// forward resolves q (recursively, by the upstreams) and returns the upstream
// answer without its OPT record; the caller sets the ID and its own OPT.
func (f *forwarder) forward(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	key := cacheKey(q, do)
	if m := f.cache.get(key, f.clock.Now()); m != nil {
		return m, nil
	}
	if len(f.upstreams) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	req := new(dns.Msg)
	req.Id = dns.Id()
	req.RecursionDesired = true
	req.CheckingDisabled = cd
	req.Question = []dns.Question{q}
	req.SetEdns0(upstreamBufSize, do)
	var errs []error
	for _, up := range f.upstreams {
		m, err := f.exchange(ctx, req, up)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused {
			errs = append(errs, fmt.Errorf("%s: %s", up, dns.RcodeToString[m.Rcode]))
			continue
		}
		stripOPT(m)
		f.cache.put(key, m, f.clock.Now())
		return m, nil
	}
	return nil, errors.Join(errs...)
}

// exchange asks one upstream over UDP, and again over TCP when the UDP
// answer came back truncated.
func (f *forwarder) exchange(ctx context.Context, req *dns.Msg, upstream string) (*dns.Msg, error) {
	m, _, err := f.udp.ExchangeContext(ctx, req, upstream)
	if err == nil && m.Truncated {
		m, _, err = f.tcp.ExchangeContext(ctx, req, upstream)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", upstream, err)
	}
	if m.Id != req.Id {
		return nil, fmt.Errorf("%s: answer ID %d does not match the question's %d", upstream, m.Id, req.Id)
	}
	return m, nil
}

func stripOPT(m *dns.Msg) {
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}

// withPort adds the DNS port to an address given without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, "53")
}
