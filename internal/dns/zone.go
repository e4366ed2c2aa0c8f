package dns

import (
	"net"
	"sort"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// SchemaVersion is the version of the Kubernetes DNS specification served as
// the TXT record of dns-version.<domain>.
const SchemaVersion = "1.1.0"

// Zone holds every record of the cluster domain, rendered by Build from the
// Services and EndpointSlices of one moment. It is immutable: lookups share
// it freely, and a change of the cluster means a new Zone.
type Zone struct {
	origin string // the cluster domain, lower case, fully qualified
	ttl    uint32
	soa    *dns.SOA
	// names maps an owner name (lower case) to its records.
	names map[string][]dns.RR
	// exists holds every name below origin that exists: the owners of records
	// and the empty non-terminals above them (ns.svc.<origin>, _tcp.…).
	exists map[string]bool
	// ptrs maps reverse names (in-addr.arpa, ip6.arpa) to PTR records.
	ptrs map[string][]dns.RR
}

// Answer is what Lookup found for a question: the sections of a reply.
type Answer struct {
	Rcode                    int
	Answer, Authority, Extra []dns.RR
}

// Build renders the zone of domain (e.g. "cluster.local") from services and
// the EndpointSlices that name them (label kubernetes.io/service-name). Every
// record gets ttl; serial becomes the SOA's serial. Endpoints not ready are
// left out, as are slices whose Service is unknown.
func Build(domain string, ttl, serial uint32, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) *Zone {
	origin := dns.CanonicalName(domain)
	z := &Zone{
		origin: origin,
		ttl:    ttl,
		names:  map[string][]dns.RR{},
		exists: map[string]bool{origin: true},
		ptrs:   map[string][]dns.RR{},
	}
	z.soa = &dns.SOA{
		Hdr:     z.hdr(origin, dns.TypeSOA),
		Ns:      "ns.dns." + origin,
		Mbox:    "hostmaster." + origin,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}
	b := builder{Zone: z, seen: map[string]bool{}}
	b.add(&dns.TXT{Hdr: z.hdr("dns-version."+origin, dns.TypeTXT), Txt: []string{SchemaVersion}})
	b.mark("svc." + origin)
	b.mark("pod." + origin)

	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := s.Namespace + "/" + name
		bySvc[key] = append(bySvc[key], s)
	}
	for _, svc := range sortedServices(services) {
		b.service(svc, bySvc[svc.Namespace+"/"+svc.Name])
	}
	// ns.dns.<origin>, the SOA's and NS record's name server, is the kube-dns
	// Service, as CoreDNS makes it.
	for _, rr := range z.names["kube-dns.kube-system.svc."+origin] {
		if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
			rr = dns.Copy(rr)
			rr.Header().Name = "ns.dns." + origin
			b.add(rr)
		}
	}
	b.weighSRV()
	return z
}

// ClustersetDomain is the zone of multi-cluster services (the MCS API's
// DNS specification): NAME.NS.svc.clusterset.local.
const ClustersetDomain = "clusterset.local"

// LabelMultiClusterService is, on the Service derived from a ServiceImport,
// the name of the multi-cluster service it stands for (the MCS API's
// multicluster.kubernetes.io/service-name).
const LabelMultiClusterService = "multicluster.kubernetes.io/service-name"

// BuildClusterset renders the clusterset.local zone: each Service labelled
// LabelMultiClusterService answers as that name in its namespace, with
// its cluster IP and ports, as the cluster zone answers Services.
func BuildClusterset(ttl, serial uint32, services []*corev1.Service) *Zone {
	var named []*corev1.Service
	for _, svc := range services {
		name := svc.Labels[LabelMultiClusterService]
		if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.Contains(name, ".") {
			continue
		}
		c := svc.DeepCopy()
		c.Name = name
		named = append(named, c)
	}
	return Build(ClustersetDomain, ttl, serial, named, nil)
}

func sortedServices(services []*corev1.Service) []*corev1.Service {
	out := append([]*corev1.Service(nil), services...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (z *Zone) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

// builder adds records to a Zone under construction, once each.
type builder struct {
	*Zone
	seen map[string]bool // RR.String() of every record added
}

func (b *builder) add(rr dns.RR) {
	key := rr.String()
	if b.seen[key] {
		return
	}
	b.seen[key] = true
	name := rr.Header().Name
	if rr.Header().Rrtype == dns.TypePTR {
		b.ptrs[name] = append(b.ptrs[name], rr)
		return
	}
	b.names[name] = append(b.names[name], rr)
	b.mark(name)
}

// mark records that name and every name between it and origin exist.
func (b *builder) mark(name string) {
	for !b.exists[name] && dns.IsSubDomain(b.origin, name) {
		b.exists[name] = true
		i, end := dns.NextLabel(name, 0)
		if end {
			return
		}
		name = name[i:]
	}
}

// address adds name's A or AAAA record for ip and, when ptr is set, the
// reverse record pointing back at name.
func (b *builder) address(name string, ip net.IP, ptr bool) {
	if ip4 := ip.To4(); ip4 != nil {
		b.add(&dns.A{Hdr: b.hdr(name, dns.TypeA), A: ip4})
	} else {
		b.add(&dns.AAAA{Hdr: b.hdr(name, dns.TypeAAAA), AAAA: ip})
	}
	if !ptr {
		return
	}
	if rev, err := dns.ReverseAddr(ip.String()); err == nil {
		b.add(&dns.PTR{Hdr: b.hdr(rev, dns.TypePTR), Ptr: name})
	}
}

func (b *builder) srv(owner, target string, port int32) {
	b.add(&dns.SRV{Hdr: b.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(port), Target: target})
}

func srvOwner(name string, proto corev1.Protocol, base string) string {
	return "_" + strings.ToLower(name) + "._" + strings.ToLower(string(proto)) + "." + base
}

func (b *builder) service(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) {
	base := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + b.origin)
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		if svc.Spec.ExternalName != "" {
			b.add(&dns.CNAME{Hdr: b.hdr(base, dns.TypeCNAME), Target: dns.CanonicalName(svc.Spec.ExternalName)})
		} else {
			b.mark(base)
		}
		return
	}
	b.mark(base)
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	if !headless {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, s := range ips {
			if ip := net.ParseIP(s); ip != nil {
				b.address(base, ip, true)
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.Name != "" {
				b.srv(srvOwner(p.Name, p.Protocol, base), base, p.Port)
			}
			b.srv(base, base, p.Port)
		}
	}
	for _, slice := range slices {
		if slice.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				ip := net.ParseIP(a)
				if ip == nil {
					continue
				}
				host := endpointHost(ep, ip)
				name := host + "." + base
				b.address(name, ip, true)
				if !headless {
					continue
				}
				b.address(base, ip, false)
				for _, p := range slice.Ports {
					if p.Port == nil {
						continue
					}
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					if p.Name != nil && *p.Name != "" {
						b.srv(srvOwner(*p.Name, proto, base), name, *p.Port)
					}
					b.srv(base, name, *p.Port)
				}
			}
		}
	}
}

// endpointHost is an endpoint's name below its Service: its hostname, or
// else its address with dashes (10-42-0-7, fd00--7), as CoreDNS names it.
func endpointHost(ep discoveryv1.Endpoint, ip net.IP) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		return strings.ToLower(*ep.Hostname)
	}
	if ip4 := ip.To4(); ip4 != nil {
		return strings.ReplaceAll(ip4.String(), ".", "-")
	}
	return strings.ReplaceAll(ip.String(), ":", "-")
}

// weighSRV shares the weight 100 among the SRV records of each name.
func (b *builder) weighSRV() {
	for _, rrs := range b.names {
		n := 0
		for _, rr := range rrs {
			if rr.Header().Rrtype == dns.TypeSRV {
				n++
			}
		}
		if n < 2 {
			continue
		}
		for _, rr := range rrs {
			if srv, ok := rr.(*dns.SRV); ok {
				srv.Weight = uint16(max(100/n, 1))
			}
		}
	}
}

// Lookup answers q from the zone. It reports false when the name is not
// the zone's to answer: outside the cluster domain, or a reverse name of an
// address the cluster does not know. The returned records are copies, owned
// by the caller, with the question's spelling of the name.
func (z *Zone) Lookup(q dns.Question) (Answer, bool) {
	name := dns.CanonicalName(q.Name)
	if rrs, ok := z.ptrs[name]; ok {
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			return Answer{Rcode: dns.RcodeSuccess, Answer: copyAs(rrs, q.Name)}, true
		}
		return Answer{Rcode: dns.RcodeSuccess}, true
	}
	if !dns.IsSubDomain(z.origin, name) {
		return Answer{}, false
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return Answer{Rcode: dns.RcodeRefused}, true
	}
	if name == z.origin {
		switch q.Qtype {
		case dns.TypeSOA:
			return Answer{Rcode: dns.RcodeSuccess, Answer: copyAs([]dns.RR{z.soa}, q.Name)}, true
		case dns.TypeNS:
			ns := &dns.NS{Hdr: z.hdr(z.origin, dns.TypeNS), Ns: z.soa.Ns}
			return Answer{Rcode: dns.RcodeSuccess, Answer: copyAs([]dns.RR{ns}, q.Name), Extra: z.addresses(z.soa.Ns)}, true
		}
		return z.noData(), true
	}
	if ip, ok := z.podAddress(name); ok {
		var rr dns.RR
		if ip4 := ip.To4(); ip4 != nil {
			rr = &dns.A{Hdr: z.hdr(q.Name, dns.TypeA), A: ip4}
		} else {
			rr = &dns.AAAA{Hdr: z.hdr(q.Name, dns.TypeAAAA), AAAA: ip}
		}
		if q.Qtype == rr.Header().Rrtype || q.Qtype == dns.TypeANY {
			return Answer{Rcode: dns.RcodeSuccess, Answer: []dns.RR{rr}}, true
		}
		return z.noData(), true
	}
	rrs := z.names[name]
	if len(rrs) == 0 {
		if z.exists[name] {
			return z.noData(), true
		}
		return Answer{Rcode: dns.RcodeNameError, Authority: []dns.RR{dns.Copy(z.soa)}}, true
	}
	var match []dns.RR
	for _, rr := range rrs {
		t := rr.Header().Rrtype
		if t == q.Qtype || q.Qtype == dns.TypeANY || t == dns.TypeCNAME {
			match = append(match, rr)
		}
	}
	if len(match) == 0 {
		return z.noData(), true
	}
	a := Answer{Rcode: dns.RcodeSuccess, Answer: copyAs(match, q.Name)}
	for _, rr := range match {
		if srv, ok := rr.(*dns.SRV); ok {
			a.Extra = append(a.Extra, z.addresses(srv.Target)...)
		}
	}
	a.Extra = dedupe(a.Extra)
	return a, true
}

// Origin is the zone's cluster domain, fully qualified and in lower case.
func (z *Zone) Origin() string { return z.origin }

func (z *Zone) noData() Answer {
	return Answer{Rcode: dns.RcodeSuccess, Authority: []dns.RR{dns.Copy(z.soa)}}
}

// addresses copies the A and AAAA records of name.
func (z *Zone) addresses(name string) []dns.RR {
	var out []dns.RR
	for _, rr := range z.names[dns.CanonicalName(name)] {
		if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
			out = append(out, dns.Copy(rr))
		}
	}
	return out
}

// podAddress parses <dashed-ip>.<namespace>.pod.<origin>. Any namespace and
// address are answered without checking a Pod has them, as CoreDNS's
// "pods insecure" mode does.
func (z *Zone) podAddress(name string) (net.IP, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+z.origin)
	if !ok {
		return nil, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 2 {
		return nil, false
	}
	dashed := labels[0]
	var ip net.IP
	if strings.Count(dashed, "-") == 3 && !strings.Contains(dashed, "--") {
		ip = net.ParseIP(strings.ReplaceAll(dashed, "-", ".")).To4()
	} else {
		ip = net.ParseIP(strings.ReplaceAll(dashed, "-", ":"))
	}
	return ip, ip != nil
}

// copyAs copies rrs, giving those owned by the asked name the asker's
// spelling of it (resolvers may randomise case, RFC draft "0x20").
func copyAs(rrs []dns.RR, asked string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		if strings.EqualFold(out[i].Header().Name, asked) {
			out[i].Header().Name = asked
		}
	}
	return out
}

func dedupe(rrs []dns.RR) []dns.RR {
	seen := map[string]bool{}
	out := rrs[:0]
	for _, rr := range rrs {
		if k := rr.String(); !seen[k] {
			seen[k] = true
			out = append(out, rr)
		}
	}
	return out
}
