package netpol

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"
)

// Table is the nftables table (family inet) the package owns.
const Table = "skiff-netpol"

const (
	forwardChain    = "forward"
	inputChain      = "input"
	ingressMap      = "isolated-ingress"
	egressMap       = "isolated-egress"
	ingressPrefix   = "pod-ingress/"
	egressPrefix    = "pod-egress/"
	maxSetNameBytes = 200 // nft allows 255; long names fall back to a hash
)

// Render is the complete rule set enforcing policies for the pods of node
// that have an IPv4 address and are not hostNetwork: the table, its chains,
// sets and maps first, then rules and elements, in a deterministic order.
// It is pure; apply (or a knftables.Fake) turns it into a transaction.
func Render(node string, policies []*networkingv1.NetworkPolicy, pods []*corev1.Pod, namespaces []*corev1.Namespace) []knftables.Object {
	r := newRenderer(policies, pods, namespaces)

	objs := []knftables.Object{
		&knftables.Table{Comment: knftables.PtrTo("skiff NetworkPolicy enforcement")},
		&knftables.Chain{
			Name: forwardChain, Type: knftables.PtrTo(knftables.FilterType),
			Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority),
		},
		&knftables.Chain{
			Name: inputChain, Type: knftables.PtrTo(knftables.FilterType),
			Hook: knftables.PtrTo(knftables.InputHook), Priority: knftables.PtrTo(knftables.FilterPriority),
		},
		&knftables.Map{Name: ingressMap, Type: "ipv4_addr : verdict"},
		&knftables.Map{Name: egressMap, Type: "ipv4_addr : verdict"},
	}
	var chains, sets, rules, elements []knftables.Object
	rules = append(rules,
		&knftables.Rule{Chain: forwardChain, Rule: "ct state established,related accept"},
		&knftables.Rule{Chain: forwardChain, Rule: "ip saddr vmap @" + egressMap},
		&knftables.Rule{Chain: forwardChain, Rule: "ip daddr vmap @" + ingressMap},
		&knftables.Rule{Chain: inputChain, Rule: "ct state established,related accept"},
		&knftables.Rule{Chain: inputChain, Rule: "ip saddr vmap @" + egressMap},
	)

	seen := map[string]bool{} // a pod IP gets one chain per direction, the first pod's
	for _, pod := range r.pods {
		ip := podIPv4(pod)
		if pod.Spec.NodeName != node || seen[ip] {
			continue
		}
		seen[ip] = true
		for _, dir := range []direction{ingress, egress} {
			selecting := r.selecting(pod, dir)
			if len(selecting) == 0 {
				continue
			}
			chain := dir.chainPrefix() + ip
			chains = append(chains, &knftables.Chain{Name: chain, Comment: knftables.PtrTo(pod.Namespace + "/" + pod.Name)})
			for _, pol := range selecting {
				for i := range dir.ruleCount(pol) {
					for _, m := range r.ruleMatches(pol, dir, i, pod) {
						rules = append(rules, &knftables.Rule{Chain: chain, Rule: knftables.Concat(m, "return")})
					}
				}
			}
			rules = append(rules, &knftables.Rule{Chain: chain, Rule: "drop"})
			elements = append(elements, &knftables.Element{Map: dir.mapName(), Key: []string{ip}, Value: []string{"jump " + chain}})
		}
	}
	for _, name := range r.setOrder {
		set := r.sets[name]
		sets = append(sets, &knftables.Set{Name: name, Type: "ipv4_addr", Comment: knftables.PtrTo(set.comment)})
		for _, ip := range set.ips {
			elements = append(elements, &knftables.Element{Set: name, Key: []string{ip}})
		}
	}
	objs = append(objs, chains...)
	objs = append(objs, sets...)
	objs = append(objs, rules...)
	return append(objs, elements...)
}

type direction int

const (
	ingress direction = iota
	egress
)

func (d direction) String() string {
	if d == ingress {
		return "ingress"
	}
	return "egress"
}

func (d direction) policyType() networkingv1.PolicyType {
	if d == ingress {
		return networkingv1.PolicyTypeIngress
	}
	return networkingv1.PolicyTypeEgress
}

func (d direction) chainPrefix() string {
	if d == ingress {
		return ingressPrefix
	}
	return egressPrefix
}

func (d direction) mapName() string {
	if d == ingress {
		return ingressMap
	}
	return egressMap
}

// peerField is the address of the other end: the source of ingress
// traffic, the destination of egress traffic.
func (d direction) peerField() string {
	if d == ingress {
		return "ip saddr"
	}
	return "ip daddr"
}

func (d direction) ruleCount(p *networkingv1.NetworkPolicy) int {
	if d == ingress {
		return len(p.Spec.Ingress)
	}
	return len(p.Spec.Egress)
}

// rule returns rule i's peers and ports.
func (d direction) rule(p *networkingv1.NetworkPolicy, i int) ([]networkingv1.NetworkPolicyPeer, []networkingv1.NetworkPolicyPort) {
	if d == ingress {
		return p.Spec.Ingress[i].From, p.Spec.Ingress[i].Ports
	}
	return p.Spec.Egress[i].To, p.Spec.Egress[i].Ports
}

// renderer holds the inputs, filtered and sorted, and the peer sets made so far.
type renderer struct {
	policies []*networkingv1.NetworkPolicy // sorted by namespace/name
	pods     []*corev1.Pod                 // peers and candidates: sorted by namespace/name
	nsLabels map[string]labels.Set

	sets     map[string]*peerSet
	setOrder []string
}

type peerSet struct {
	comment string
	ips     []string // sorted
}

func newRenderer(policies []*networkingv1.NetworkPolicy, pods []*corev1.Pod, namespaces []*corev1.Namespace) *renderer {
	r := &renderer{nsLabels: map[string]labels.Set{}, sets: map[string]*peerSet{}}
	r.policies = append(r.policies, policies...)
	sort.Slice(r.policies, func(i, j int) bool { return key(&r.policies[i].ObjectMeta) < key(&r.policies[j].ObjectMeta) })
	for _, p := range pods {
		if podIPv4(p) != "" && !p.Spec.HostNetwork && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			r.pods = append(r.pods, p)
		}
	}
	sort.Slice(r.pods, func(i, j int) bool { return key(&r.pods[i].ObjectMeta) < key(&r.pods[j].ObjectMeta) })
	for _, ns := range namespaces {
		r.nsLabels[ns.Name] = labels.Set(ns.Labels)
	}
	return r
}

func key(m *metav1.ObjectMeta) string { return m.Namespace + "/" + m.Name }

// podIPv4 is the pod's IPv4 address, or "".
func podIPv4(p *corev1.Pod) string {
	ips := []string{p.Status.PodIP}
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
			return ip.To4().String()
		}
	}
	return ""
}

// policyTypes are the policy's types, defaulted as the API server does.
func policyTypes(p *networkingv1.NetworkPolicy) []networkingv1.PolicyType {
	if len(p.Spec.PolicyTypes) > 0 {
		return p.Spec.PolicyTypes
	}
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(p.Spec.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	return types
}

// selecting are the policies that isolate pod in direction d.
func (r *renderer) selecting(pod *corev1.Pod, d direction) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, p := range r.policies {
		if p.Namespace != pod.Namespace || !matches(&p.Spec.PodSelector, pod.Labels) {
			continue
		}
		for _, t := range policyTypes(p) {
			if t == d.policyType() {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// matches reports whether sel selects a set of labels; an invalid selector
// (which the API server refuses) selects nothing.
func matches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

// peerPods are the pods a selector peer (podSelector, namespaceSelector or
// both) of a policy in namespace ns selects.
func (r *renderer) peerPods(ns string, peer networkingv1.NetworkPolicyPeer) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range r.pods {
		if peer.NamespaceSelector == nil {
			if p.Namespace != ns {
				continue
			}
		} else if !matches(peer.NamespaceSelector, r.nsLabels[p.Namespace]) {
			continue
		}
		if peer.PodSelector != nil && !matches(peer.PodSelector, p.Labels) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// ipBlock is an ipBlock peer parsed: an IPv4 CIDR and its exceptions.
type ipBlock struct {
	cidr   *net.IPNet
	except []*net.IPNet
}

func parseIPBlock(b *networkingv1.IPBlock) (ipBlock, bool) {
	_, cidr, err := net.ParseCIDR(b.CIDR)
	if err != nil || cidr.IP.To4() == nil {
		return ipBlock{}, false // IPv6 is not filtered; invalid is refused by the API server
	}
	out := ipBlock{cidr: cidr}
	for _, e := range b.Except {
		if _, n, err := net.ParseCIDR(e); err == nil && n.IP.To4() != nil {
			out.except = append(out.except, n)
		}
	}
	return out, true
}

func (b ipBlock) contains(ip net.IP) bool {
	if !b.cidr.Contains(ip) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(ip) {
			return false
		}
	}
	return true
}

func (b ipBlock) match(field string) string {
	m := field + " " + b.cidr.String()
	if len(b.except) > 0 {
		ex := make([]string, len(b.except))
		for i, e := range b.except {
			ex[i] = e.String()
		}
		m += " " + field + " != { " + strings.Join(ex, ", ") + " }"
	}
	return m
}

// ruleMatches renders rule i of policy pol (direction d) for pod, the pod
// the chain belongs to: one nftables match per allowed (peer, protocol)
// combination. A rule that can match nothing renders nothing.
func (r *renderer) ruleMatches(pol *networkingv1.NetworkPolicy, d direction, i int, pod *corev1.Pod) []string {
	peers, ports := d.rule(pol, i)

	// Peers: every address (no peers), or a set of selected pod IPs plus
	// ipBlocks.
	var peerMatches []string
	var blocks []ipBlock
	hasSelectors := false
	for _, p := range peers {
		if p.IPBlock != nil {
			if b, ok := parseIPBlock(p.IPBlock); ok {
				blocks = append(blocks, b)
			}
			continue
		}
		hasSelectors = true
	}
	if len(peers) == 0 {
		peerMatches = []string{""}
	} else {
		if hasSelectors {
			peerMatches = append(peerMatches, d.peerField()+" @"+r.peerSet(pol, d, i, peers))
		}
		for _, b := range blocks {
			peerMatches = append(peerMatches, b.match(d.peerField()))
		}
	}

	// Ports: numbered ones (and, for ingress, named ones resolved against
	// the pod itself) apply to every peer; egress named ports are resolved
	// per peer pod.
	var numbered []portRange
	var named []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		switch {
		case p.Port == nil || p.Port.Type == intstr.Int:
			numbered = append(numbered, portRangeOf(p))
		case d == ingress:
			for _, n := range containerPorts(pod, p.Port.StrVal, protocol(p)) {
				numbered = append(numbered, portRange{proto: protocol(p), from: n, to: n})
			}
		default:
			named = append(named, p)
		}
	}
	var out []string
	if len(ports) == 0 {
		out = peerMatches
	} else if len(numbered) > 0 {
		for _, pm := range peerMatches {
			for _, portm := range portMatches(numbered) {
				out = append(out, join(pm, portm))
			}
		}
	}
	if len(named) > 0 {
		out = append(out, r.egressNamedPorts(pol.Namespace, peers, blocks, named)...)
	}
	return out
}

// egressNamedPorts allows each named port on the peer pods that declare it:
// one rule per resolved (protocol, port), with the pods' addresses.
func (r *renderer) egressNamedPorts(ns string, peers []networkingv1.NetworkPolicyPeer, blocks []ipBlock, named []networkingv1.NetworkPolicyPort) []string {
	candidates := map[*corev1.Pod]bool{}
	if len(peers) == 0 {
		for _, p := range r.pods {
			candidates[p] = true
		}
	}
	for _, peer := range peers {
		if peer.IPBlock == nil {
			for _, p := range r.peerPods(ns, peer) {
				candidates[p] = true
			}
		}
	}
	for _, p := range r.pods {
		ip := net.ParseIP(podIPv4(p))
		for _, b := range blocks {
			if b.contains(ip) {
				candidates[p] = true
			}
		}
	}
	byPort := map[portRange][]string{}
	for _, p := range r.pods { // r.pods order keeps the output deterministic
		if !candidates[p] {
			continue
		}
		for _, np := range named {
			for _, n := range containerPorts(p, np.Port.StrVal, protocol(np)) {
				k := portRange{proto: protocol(np), from: n, to: n}
				byPort[k] = append(byPort[k], podIPv4(p))
			}
		}
	}
	keys := make([]portRange, 0, len(byPort))
	for k := range byPort {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	var out []string
	for _, k := range keys {
		ips := byPort[k]
		sort.Slice(ips, func(a, b int) bool { return ipLess(ips[a], ips[b]) })
		out = append(out, join("ip daddr "+anonSet(dedupe(ips)), portMatches([]portRange{k})[0]))
	}
	return out
}

// peerSet names the set of pod IPs rule i's selector peers select,
// creating it on first use.
func (r *renderer) peerSet(pol *networkingv1.NetworkPolicy, d direction, i int, peers []networkingv1.NetworkPolicyPeer) string {
	name := fmt.Sprintf("peers/%s/%s/%s/%d", pol.Namespace, pol.Name, d, i)
	if len(name) > maxSetNameBytes {
		sum := sha256.Sum256([]byte(pol.Namespace + "/" + pol.Name))
		name = fmt.Sprintf("peers/%s/%s/%d", base32.StdEncoding.EncodeToString(sum[:])[:16], d, i)
	}
	if _, ok := r.sets[name]; ok {
		return name
	}
	var ips []string
	for _, peer := range peers {
		if peer.IPBlock != nil {
			continue
		}
		for _, p := range r.peerPods(pol.Namespace, peer) {
			ips = append(ips, podIPv4(p))
		}
	}
	sort.Slice(ips, func(a, b int) bool { return ipLess(ips[a], ips[b]) })
	r.sets[name] = &peerSet{
		comment: fmt.Sprintf("%s/%s %s[%d]", pol.Namespace, pol.Name, d, i),
		ips:     dedupe(ips),
	}
	r.setOrder = append(r.setOrder, name)
	return name
}

// portRange is a protocol and an inclusive port range; from == 0 means
// every port of the protocol.
type portRange struct {
	proto    corev1.Protocol
	from, to int
}

func (a portRange) less(b portRange) bool {
	if a.proto != b.proto {
		return protoOrder(a.proto) < protoOrder(b.proto)
	}
	if a.from != b.from {
		return a.from < b.from
	}
	return a.to < b.to
}

func protoOrder(p corev1.Protocol) int {
	switch p {
	case corev1.ProtocolTCP:
		return 0
	case corev1.ProtocolUDP:
		return 1
	}
	return 2
}

func protocol(p networkingv1.NetworkPolicyPort) corev1.Protocol {
	if p.Protocol == nil {
		return corev1.ProtocolTCP
	}
	return *p.Protocol
}

func portRangeOf(p networkingv1.NetworkPolicyPort) portRange {
	r := portRange{proto: protocol(p)}
	if p.Port != nil {
		r.from, r.to = p.Port.IntValue(), p.Port.IntValue()
		if p.EndPort != nil && int(*p.EndPort) > r.from {
			r.to = int(*p.EndPort)
		}
	}
	return r
}

// containerPorts are the numbers of pod's container ports called name.
func containerPorts(pod *corev1.Pod, name string, proto corev1.Protocol) []int {
	var out []int
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				out = append(out, int(p.ContainerPort))
			}
		}
	}
	return out
}

// portMatches renders port ranges as one match per protocol, merging
// overlapping ranges (nft refuses overlapping intervals in a set).
func portMatches(ranges []portRange) []string {
	byProto := map[corev1.Protocol][]portRange{}
	for _, r := range ranges {
		byProto[r.proto] = append(byProto[r.proto], r)
	}
	var out []string
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		rs := byProto[proto]
		if len(rs) == 0 {
			continue
		}
		name := strings.ToLower(string(proto))
		sort.Slice(rs, func(i, j int) bool { return rs[i].less(rs[j]) })
		if rs[0].from == 0 {
			out = append(out, "meta l4proto "+name)
			continue
		}
		var merged []portRange
		for _, r := range rs {
			if n := len(merged); n > 0 && r.from <= merged[n-1].to+1 {
				merged[n-1].to = max(merged[n-1].to, r.to)
				continue
			}
			merged = append(merged, r)
		}
		elems := make([]string, len(merged))
		for i, r := range merged {
			elems[i] = strconv.Itoa(r.from)
			if r.to != r.from {
				elems[i] += "-" + strconv.Itoa(r.to)
			}
		}
		out = append(out, name+" dport "+anonSet(elems))
	}
	return out
}

// anonSet is a single value or an anonymous set.
func anonSet(elems []string) string {
	if len(elems) == 1 {
		return elems[0]
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

func dedupe(sorted []string) []string {
	out := sorted[:0:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func ipLess(a, b string) bool {
	x, y := net.ParseIP(a).To4(), net.ParseIP(b).To4()
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}
