package podnet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/knftables"

	"github.com/skiffdev/skiff/internal/changes"
)

// routeProtocol marks the routes the agent owns, so a resync can find and
// remove stale ones without touching anybody else's.
const routeProtocol netlink.RouteProtocol = 0x53

// Config is what the pod network of one node is told.
type Config struct {
	// NodeName is this node's name.
	NodeName string
	// ClusterCIDR is the cluster's pod network.
	ClusterCIDR string
	// Backend is BackendHostGW (direct routes; nodes share a link, the
	// default) or BackendVXLAN (an overlay).
	Backend string
	// Client acts as the node.
	Client kubernetes.Interface
	Log    *slog.Logger
}

// Network makes the pod network flat across nodes: with host-gw, a route to
// every other node's podCIDR via that node's InternalIP; with VXLAN, the
// overlay of vxlan.go; with both, masquerading for pod traffic that leaves
// the cluster CIDR. Each sync computes the whole desired state from the Node
// list and applies it.
type Network struct {
	nodeName, clusterCIDR, backend string
	client                         kubernetes.Interface
	log                            *slog.Logger
}

// New checks cfg.
func New(cfg Config) (*Network, error) {
	if err := CheckBackend(cfg.Backend); err != nil {
		return nil, err
	}
	if _, _, err := net.ParseCIDR(cfg.ClusterCIDR); err != nil {
		return nil, fmt.Errorf("podnet: Config.ClusterCIDR %q: %v", cfg.ClusterCIDR, err)
	}
	if cfg.NodeName == "" || cfg.Client == nil {
		return nil, fmt.Errorf("podnet: Config.NodeName and Config.Client are required")
	}
	if cfg.Backend == "" {
		cfg.Backend = BackendHostGW
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Network{nodeName: cfg.NodeName, clusterCIDR: cfg.ClusterCIDR, backend: cfg.Backend, client: cfg.Client, log: cfg.Log}, nil
}

// Run keeps the node's routes and rules in step with the Nodes until ctx
// ends.
func (p *Network) Run(ctx context.Context) error {
	if err := p.ensureMasquerade(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(p.client, 5*time.Minute)
	nodes := factory.Core().V1().Nodes()
	changed := changes.New()
	if err := changed.Watch(nodes.Informer()); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			if err := p.sync(ctx, list); err != nil {
				p.log.Warn("sync pod network", "backend", p.backend, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed.C():
		case <-time.After(30 * time.Second):
		}
	}
}

func (p *Network) sync(ctx context.Context, nodes []*corev1.Node) error {
	if p.backend != BackendVXLAN {
		return p.syncRoutes(desiredRoutes(p.nodeName, nodes))
	}
	var self *corev1.Node
	for _, n := range nodes {
		if n.Name == p.nodeName {
			self = n
		}
	}
	if self == nil {
		return nil // not registered yet
	}
	link, err := p.ensureVXLAN(ctx, self)
	if err != nil {
		return err
	}
	return p.syncVXLAN(link, vxlanPeers(p.nodeName, nodes))
}

// Pod network backends.
const (
	BackendHostGW = "host-gw"
	BackendVXLAN  = "vxlan"
)

// CheckBackend refuses a backend that does not exist ("" is the default).
func CheckBackend(b string) error {
	switch b {
	case "", BackendHostGW, BackendVXLAN:
		return nil
	}
	return fmt.Errorf("--pod-network %q: want host-gw or vxlan", b)
}

// desiredRoutes maps each other node's podCIDRs to its InternalIP.
func desiredRoutes(self string, nodes []*corev1.Node) map[string]net.IP {
	out := map[string]net.IP{}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		var gw net.IP
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
					gw = ip
					break
				}
			}
		}
		if gw == nil {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if _, ipnet, err := net.ParseCIDR(c); err == nil && ipnet.IP.To4() != nil {
				out[ipnet.String()] = gw
			}
		}
	}
	return out
}

func (p *Network) syncRoutes(want map[string]net.IP) error {
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		if gw, ok := want[r.Dst.String()]; !ok || !gw.Equal(r.Gw) {
			if err := netlink.RouteDel(&r); err != nil {
				p.log.Warn("delete stale pod route", "dst", r.Dst, "err", err)
			}
		}
	}
	var errs []error
	for cidr, gw := range want {
		_, dst, _ := net.ParseCIDR(cidr)
		if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw, Protocol: routeProtocol}); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", cidr, gw, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// natTable is the pod network's nftables table (family ip).
const natTable = "skiff"

// ensureMasquerade installs table ip skiff: pod traffic to anywhere outside
// the cluster CIDR leaves with the node's address; pod-to-pod keeps its own.
func (p *Network) ensureMasquerade(ctx context.Context) error {
	nft, err := knftables.New(knftables.IPv4Family, natTable)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff pod network")})
	tx.Add(&knftables.Chain{
		Name:     "postrouting",
		Type:     knftables.PtrTo(knftables.NATType),
		Hook:     knftables.PtrTo(knftables.PostroutingHook),
		Priority: knftables.PtrTo(knftables.SNATPriority),
	})
	tx.Flush(&knftables.Chain{Name: "postrouting"})
	tx.Add(&knftables.Rule{
		Chain: "postrouting",
		Rule:  knftables.Concat("ip saddr", p.clusterCIDR, "ip daddr !=", p.clusterCIDR, "masquerade"),
	})
	return nft.Run(ctx, tx)
}
