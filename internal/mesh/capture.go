package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"sigs.k8s.io/knftables"
)

// Table is the nftables table (family ip) that captures enrolled pods'
// TCP connections.
const Table = "skiff-mesh"

// The node proxy's ports, as Istio's ztunnel numbers them.
const (
	// OutboundPort receives enrolled pods' outgoing connections.
	OutboundPort = 15001
	// InboundPlaintextPort receives connections to enrolled pods from
	// sources outside the mesh.
	InboundPlaintextPort = 15006
	// TunnelPort is where node proxies accept each other's mutual-TLS
	// HTTP/2 CONNECT tunnels (Istio's HBONE port).
	TunnelPort = 15008
	// MetricsPort serves /metrics in the Prometheus format.
	MetricsPort = 15020
)

// RenderCapture is the table's whole content for the node's enrolled pods:
// a set of their addresses and one NAT chain that redirects, before
// kube-proxy translates Service addresses (priority dstnat - 10), their
// outgoing TCP connections to the outbound port and TCP connections to
// them from elsewhere to the inbound port. The node's own connections
// (the proxy's, the kubelet's probes) leave through the output hook and
// are never captured.
//
// outbound and inbound are the proxy's listening ports (OutboundPort and
// InboundPlaintextPort unless a test chose others).
func RenderCapture(enrolled []netip.Addr, outbound, inbound int) []knftables.Object {
	sorted := slices.Clone(enrolled)
	slices.SortFunc(sorted, netip.Addr.Compare)
	sorted = slices.Compact(sorted)
	objs := []knftables.Object{
		&knftables.Table{Comment: knftables.PtrTo("skiff mesh: capture of enrolled pods")},
		&knftables.Set{Name: "enrolled", Type: "ipv4_addr", Comment: knftables.PtrTo("enrolled pods of this node")},
		&knftables.Chain{
			Name:     "prerouting",
			Type:     knftables.PtrTo(knftables.NATType),
			Hook:     knftables.PtrTo(knftables.PreroutingHook),
			Priority: knftables.PtrTo(knftables.DNATPriority + "-10"),
		},
		&knftables.Rule{Chain: "prerouting", Rule: "ip saddr @enrolled meta l4proto tcp redirect to :" + strconv.Itoa(outbound)},
		&knftables.Rule{Chain: "prerouting", Rule: "ip daddr @enrolled meta l4proto tcp redirect to :" + strconv.Itoa(inbound)},
	}
	for _, a := range sorted {
		objs = append(objs, &knftables.Element{Set: "enrolled", Key: []string{a.String()}})
	}
	return objs
}

// applyCapture replaces the table's content with objs in one transaction.
func applyCapture(ctx context.Context, nft knftables.Interface, objs []knftables.Object) error {
	tx := nft.NewTransaction()
	for _, o := range objs {
		tx.Add(o)
		switch o := o.(type) {
		case *knftables.Set:
			tx.Flush(o)
		case *knftables.Chain:
			tx.Flush(o)
		}
	}
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("apply table ip %s: %w", Table, err)
	}
	return nil
}

// DeleteCapture removes the table (skiff agent teardown, and a proxy that
// stops: un-captured traffic flows directly).
func DeleteCapture(ctx context.Context) error {
	nft, err := knftables.New(knftables.IPv4Family, Table)
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		return err
	}
	return nil
}
