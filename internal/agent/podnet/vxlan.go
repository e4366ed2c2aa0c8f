package podnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The VXLAN backend, for nodes that do not share a link: as flannel's, each
// node has a VXLAN device whose address is its podCIDR's network address
// (a /32), publishes the device's MAC on its Node, and reaches another
// node's podCIDR through that node's device address, with a static
// neighbour entry (address → MAC) and a forwarding entry (MAC → the node's
// InternalIP) instead of learning.
const (
	vxlanDevice = "skiff.vxlan"
	vxlanVNI    = 1
	vxlanPort   = 8472
	// VTEPMACAnnotation carries a node's VXLAN device MAC.
	VTEPMACAnnotation = "skiff.dev/vtep-mac"
	// vxlanOverhead is what the encapsulation costs the pods' MTU.
	vxlanOverhead = 50
)

// peer is what one remote node contributes to the overlay.
type peer struct {
	podCIDR *net.IPNet
	vtepIP  net.IP // the podCIDR's network address
	mac     net.HardwareAddr
	nodeIP  net.IP
}

// vxlanPeers lists the remote nodes that have a podCIDR, an InternalIP and
// a published VTEP MAC.
func vxlanPeers(self string, nodes []*corev1.Node) []peer {
	var out []peer
	for _, n := range nodes {
		if n.Name == self || n.Spec.PodCIDR == "" {
			continue
		}
		_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil || cidr.IP.To4() == nil {
			continue
		}
		mac, err := net.ParseMAC(n.Annotations[VTEPMACAnnotation])
		if err != nil {
			continue
		}
		ip := internalIP(n)
		if ip == nil {
			continue
		}
		out = append(out, peer{podCIDR: cidr, vtepIP: cidr.IP, mac: mac, nodeIP: ip})
	}
	return out
}

func internalIP(n *corev1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip
			}
		}
	}
	return nil
}

// ensureVXLAN creates (or checks) this node's device and publishes its MAC.
func (p *Network) ensureVXLAN(ctx context.Context, self *corev1.Node) (netlink.Link, error) {
	nodeIP := internalIP(self)
	if nodeIP == nil || self.Spec.PodCIDR == "" {
		return nil, fmt.Errorf("node %s has no InternalIP or podCIDR yet", self.Name)
	}
	_, cidr, err := net.ParseCIDR(self.Spec.PodCIDR)
	if err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(vxlanDevice)
	if existing, ok := link.(*netlink.Vxlan); err == nil && (!ok || !existing.SrcAddr.Equal(nodeIP) || existing.VxlanId != vxlanVNI) {
		_ = netlink.LinkDel(link) // wrong kind or address: make it anew
		link = nil
	}
	if link == nil {
		parent, err := linkWithAddress(nodeIP)
		if err != nil {
			return nil, err
		}
		dev := &netlink.Vxlan{
			LinkAttrs:    netlink.LinkAttrs{Name: vxlanDevice, MTU: parent.Attrs().MTU - vxlanOverhead},
			VxlanId:      vxlanVNI,
			VtepDevIndex: parent.Attrs().Index,
			SrcAddr:      nodeIP,
			Port:         vxlanPort,
			Learning:     false,
		}
		if err := netlink.LinkAdd(dev); err != nil {
			return nil, fmt.Errorf("create %s: %w", vxlanDevice, err)
		}
		if link, err = netlink.LinkByName(vxlanDevice); err != nil {
			return nil, err
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: cidr.IP, Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", addr, vxlanDevice, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, err
	}
	mac := link.Attrs().HardwareAddr.String()
	if self.Annotations[VTEPMACAnnotation] != mac {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{VTEPMACAnnotation: mac}}})
		if _, err := p.client.CoreV1().Nodes().Patch(ctx, self.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return nil, fmt.Errorf("publish VTEP MAC: %w", err)
		}
	}
	return link, nil
}

// syncVXLAN makes the overlay's routes, neighbours and forwarding entries
// exactly those of the current peers.
func (p *Network) syncVXLAN(link netlink.Link, peers []peer) error {
	idx := link.Attrs().Index
	want := map[string]peer{}
	for _, pr := range peers {
		want[pr.podCIDR.String()] = pr
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if pr, ok := want[r.Dst.String()]; !ok || r.LinkIndex != idx || !r.Gw.Equal(pr.vtepIP) {
			_ = netlink.RouteDel(&r)
		}
	}
	neighs, _ := netlink.NeighList(idx, netlink.FAMILY_V4)
	fdbs, _ := netlink.NeighList(idx, unix.AF_BRIDGE)
	keepIP, keepMAC := map[string]bool{}, map[string]bool{}
	var errs []error
	for _, pr := range peers {
		keepIP[pr.vtepIP.String()], keepMAC[pr.mac.String()] = true, true
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Type: netlink.NDA_DST,
			IP: pr.vtepIP, HardwareAddr: pr.mac}); err != nil {
			errs = append(errs, fmt.Errorf("neighbour %s: %w", pr.vtepIP, err))
		}
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: pr.nodeIP, HardwareAddr: pr.mac}); err != nil {
			errs = append(errs, fmt.Errorf("fdb %s: %w", pr.mac, err))
		}
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: idx, Dst: pr.podCIDR, Gw: pr.vtepIP,
			Flags: int(netlink.FLAG_ONLINK), Protocol: routeProtocol}); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", pr.podCIDR, err))
		}
	}
	for _, n := range neighs {
		if n.IP != nil && !keepIP[n.IP.String()] && n.State == netlink.NUD_PERMANENT {
			_ = netlink.NeighDel(&n)
		}
	}
	for _, f := range fdbs {
		if f.HardwareAddr != nil && !keepMAC[f.HardwareAddr.String()] && f.IP != nil {
			_ = netlink.NeighDel(&f)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// linkWithAddress finds the interface that holds ip.
func linkWithAddress(ip net.IP) (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(ip) {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no interface holds the node address %s", ip)
}
