package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
)

// Address ranges of the fake network. Node addresses come from nodeNetwork;
// pod addresses from the node's spec.podCIDRs when the controller manager
// has allocated them, else from fallbackPodNetwork, which no default skiff
// range overlaps (cluster 10.42.0.0/16, services 10.43.0.0/16).
var (
	nodeNetwork        = netip.MustParsePrefix("10.200.0.0/16")
	fallbackPodNetwork = netip.MustParsePrefix("100.64.0.0/10")
)

// pool hands out the addresses of one prefix, round robin, so that an
// address given back is reused as late as possible. It is not safe for
// concurrent use.
type pool struct {
	prefix      netip.Prefix
	first, last uint64 // usable offsets from the prefix's base address
	next        uint64 // offset the next search starts at
	used        map[netip.Addr]bool
}

func newPool(p netip.Prefix) *pool {
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	size := uint64(1) << min(hostBits, 32)
	first, last := uint64(0), size-1
	if hostBits >= 2 {
		first = 1 // the network address
		if p.Addr().Is4() {
			last = size - 2 // the broadcast address
		}
	}
	return &pool{prefix: p, first: first, last: last, next: first, used: map[netip.Addr]bool{}}
}

// allocate returns a free address, or false when the pool is exhausted.
func (p *pool) allocate() (netip.Addr, bool) {
	n := p.last - p.first + 1
	for i := uint64(0); i < n; i++ {
		off := p.first + (p.next-p.first+i)%n
		a := addrAt(p.prefix, off)
		if !p.used[a] {
			p.used[a] = true
			p.next = off + 1
			if p.next > p.last {
				p.next = p.first
			}
			return a, true
		}
	}
	return netip.Addr{}, false
}

// claim marks a as used; it reports false when a is outside the pool.
func (p *pool) claim(a netip.Addr) bool {
	if !p.prefix.Contains(a) {
		return false
	}
	p.used[a] = true
	return true
}

func (p *pool) release(a netip.Addr) { delete(p.used, a) }

// addrAt is the address off places after p's base address.
func addrAt(p netip.Prefix, off uint64) netip.Addr {
	base := p.Addr()
	if base.Is4() {
		b := base.As4()
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+uint32(off))
		return netip.AddrFrom4(b)
	}
	b := base.As16()
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+off)
	return netip.AddrFrom16(b)
}

// allocation is what one pod holds: addrs[i] came from pools[i] (nil when
// the address belongs to no pool the ipam knows).
type allocation struct {
	uid   types.UID
	addrs []netip.Addr
	pools []*pool
}

// ipam gives pods addresses: one from each of their node's pod CIDRs, or
// one from the fallback network when the node has none. Pods are keyed by
// namespace/name; a new pod under an old name (a StatefulSet's) first gives
// back what the old one held. It is not safe for concurrent use.
type ipam struct {
	pools map[netip.Prefix]*pool
	pods  map[string]allocation
}

func newIPAM() *ipam {
	return &ipam{pools: map[netip.Prefix]*pool{}, pods: map[string]allocation{}}
}

func (m *ipam) pool(p netip.Prefix) *pool {
	p = p.Masked()
	if m.pools[p] == nil {
		m.pools[p] = newPool(p)
	}
	return m.pools[p]
}

// assign returns the addresses of pod key/uid, allocating them on first use.
func (m *ipam) assign(key string, uid types.UID, cidrs []netip.Prefix) ([]netip.Addr, error) {
	if a, ok := m.pods[key]; ok {
		if a.uid == uid {
			return a.addrs, nil
		}
		m.release(key)
	}
	if len(cidrs) == 0 {
		cidrs = []netip.Prefix{fallbackPodNetwork}
	}
	var a allocation
	a.uid = uid
	for _, c := range cidrs {
		p := m.pool(c)
		addr, ok := p.allocate()
		if !ok {
			for i, got := range a.addrs {
				a.pools[i].release(got)
			}
			return nil, fmt.Errorf("pod CIDR %s is exhausted", c)
		}
		a.addrs = append(a.addrs, addr)
		a.pools = append(a.pools, p)
	}
	m.pods[key] = a
	return a.addrs, nil
}

// claim records addresses a pod already shows in its status, so that they
// are not handed out twice after a restart. cidrs are the pools they may
// belong to besides the fallback network.
func (m *ipam) claim(key string, uid types.UID, addrs []netip.Addr, cidrs []netip.Prefix) {
	if _, ok := m.pods[key]; ok {
		return
	}
	a := allocation{uid: uid, addrs: addrs, pools: make([]*pool, len(addrs))}
	cidrs = append(cidrs[:len(cidrs):len(cidrs)], fallbackPodNetwork)
	for i, addr := range addrs {
		for _, c := range cidrs {
			if p := m.pool(c); p.claim(addr) {
				a.pools[i] = p
				break
			}
		}
	}
	m.pods[key] = a
}

// release gives back what pod key holds.
func (m *ipam) release(key string) {
	a, ok := m.pods[key]
	if !ok {
		return
	}
	for i, addr := range a.addrs {
		if a.pools[i] != nil {
			a.pools[i].release(addr)
		}
	}
	delete(m.pods, key)
}
