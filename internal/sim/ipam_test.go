package sim

import (
	"net/netip"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestPoolSkipsNetworkAndBroadcastAndRoundRobins(t *testing.T) {
	p := newPool(netip.MustParsePrefix("10.0.0.0/30"))
	var got []netip.Addr
	for range 3 {
		a, ok := p.allocate()
		if !ok {
			break
		}
		got = append(got, a)
	}
	if want := addrs("10.0.0.1", "10.0.0.2"); !equalAddrs(got, want) {
		t.Fatalf("allocated %v, want %v then exhaustion", got, want)
	}
	p.release(netip.MustParseAddr("10.0.0.1"))
	if a, _ := p.allocate(); a != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("after release got %v, want 10.0.0.1", a)
	}

	p = newPool(netip.MustParsePrefix("10.0.0.0/24"))
	a1, _ := p.allocate()
	p.release(a1)
	a2, _ := p.allocate()
	if a1 == a2 {
		t.Fatalf("released address %v handed out again at once; want round robin", a1)
	}
}

func TestPoolClaim(t *testing.T) {
	p := newPool(netip.MustParsePrefix("10.0.0.0/30"))
	if !p.claim(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("claim inside the prefix failed")
	}
	if p.claim(netip.MustParseAddr("10.0.1.1")) {
		t.Fatal("claim outside the prefix succeeded")
	}
	if a, _ := p.allocate(); a != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("got %v, want the unclaimed 10.0.0.2", a)
	}
}

func TestPoolIPv6(t *testing.T) {
	p := newPool(netip.MustParsePrefix("fd00:10:244:1::/64"))
	a, ok := p.allocate()
	if !ok || a != netip.MustParseAddr("fd00:10:244:1::1") {
		t.Fatalf("got %v %v, want fd00:10:244:1::1", a, ok)
	}
}

func TestIPAM(t *testing.T) {
	cidr := []netip.Prefix{netip.MustParsePrefix("10.42.3.0/24")}
	m := newIPAM()

	a, err := m.assign("ns/web-0", "uid-1", cidr)
	if err != nil || !equalAddrs(a, addrs("10.42.3.1")) {
		t.Fatalf("assign = %v, %v; want [10.42.3.1]", a, err)
	}
	if again, _ := m.assign("ns/web-0", "uid-1", cidr); !equalAddrs(again, a) {
		t.Fatalf("second assign for the same pod = %v, want %v", again, a)
	}
	// A new pod under the same name gives the old address back first.
	b, _ := m.assign("ns/web-0", "uid-2", cidr)
	if equalAddrs(a, b) {
		t.Fatalf("new pod under an old name kept the old address %v", b)
	}
	if len(m.pools[cidr[0]].used) != 1 {
		t.Fatalf("pool holds %d addresses, want 1", len(m.pools[cidr[0]].used))
	}
	m.release("ns/web-0")
	if len(m.pools[cidr[0]].used) != 0 {
		t.Fatal("release left the address used")
	}

	// Without pod CIDRs, pods get fallback addresses.
	f, _ := m.assign("ns/other", "uid-3", nil)
	if len(f) != 1 || !fallbackPodNetwork.Contains(f[0]) {
		t.Fatalf("fallback assign = %v, want one address in %s", f, fallbackPodNetwork)
	}

	// Dual stack: one address per CIDR.
	dual := []netip.Prefix{netip.MustParsePrefix("10.42.4.0/24"), netip.MustParsePrefix("fd00::/64")}
	d, _ := m.assign("ns/dual", "uid-4", dual)
	if !equalAddrs(d, addrs("10.42.4.1", "fd00::1")) {
		t.Fatalf("dual-stack assign = %v", d)
	}

	// Exhaustion gives back what was taken so far.
	small := []netip.Prefix{netip.MustParsePrefix("10.42.5.0/24"), netip.MustParsePrefix("10.42.6.0/31")}
	m.pool(small[1]).claim(netip.MustParseAddr("10.42.6.0"))
	m.pool(small[1]).claim(netip.MustParseAddr("10.42.6.1"))
	if _, err := m.assign("ns/full", "uid-5", small); err == nil {
		t.Fatal("assign from an exhausted CIDR succeeded")
	}
	if len(m.pools[small[0]].used) != 0 {
		t.Fatal("failed assign kept an address from the first CIDR")
	}
}

func TestIPAMClaimSurvivesRestart(t *testing.T) {
	cidr := []netip.Prefix{netip.MustParsePrefix("10.42.3.0/24")}
	m := newIPAM()
	m.claim("ns/running", "uid-1", addrs("10.42.3.1"), cidr)
	a, _ := m.assign("ns/new", "uid-2", cidr)
	if equalAddrs(a, addrs("10.42.3.1")) {
		t.Fatal("an address a running pod holds was handed out again")
	}
	m.release("ns/running")
	if m.pools[cidr[0]].used[netip.MustParseAddr("10.42.3.1")] {
		t.Fatal("releasing a claimed pod left its address used")
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
