package ingress

import (
	"net"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// udpEcho answers every datagram with name and what it got.
func udpEcho(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// udpService is a Service with UDP port "dns" 80 and its one-endpoint slice
// at addr.
func udpService(name string, addr netip.AddrPort) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := makeService("ns", name).port("dns", 80).obj()
	svc.Spec.Ports[0].Protocol = corev1.ProtocolUDP
	slice := makeSlice("ns", name, "x").port("dns", int32(addr.Port())).ready(addr.Addr().String()).obj()
	slice.Ports[0].Protocol = ptr.To(corev1.ProtocolUDP)
	return svc, slice
}

// TestUDPRoute: a UDPRoute on a UDP listener carries a client's datagrams
// both ways within one session (one backend per client), and new clients
// spread over the weighted backends; a UDPRoute to a Service without that
// UDP port does not resolve.
func TestUDPRoute(t *testing.T) {
	gw := makeGateway("ns", "gw").listener("dns", gwv1.UDPProtocolType, 5300, "").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	in.UDPRoutes = []*gwv1.UDPRoute{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "dns", Generation: 7, CreationTimestamp: metav1.NewTime(epoch)},
		Spec: gwv1.UDPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules: []gwv1.UDPRouteRule{{BackendRefs: []gwv1.BackendRef{
				{BackendObjectReference: gwv1.BackendObjectReference{Name: "dns-a", Port: ptr.To(gwv1.PortNumber(80))}, Weight: ptr.To(int32(1))},
				{BackendObjectReference: gwv1.BackendObjectReference{Name: "dns-b", Port: ptr.To(gwv1.PortNumber(80))}, Weight: ptr.To(int32(1))},
			}}},
		},
	}}
	tcpOnly := in.UDPRoutes[0].DeepCopy()
	tcpOnly.Name = "tcp-only"
	tcpOnly.Spec.Rules[0].BackendRefs = tcpOnly.Spec.Rules[0].BackendRefs[:1]
	tcpOnly.Spec.Rules[0].BackendRefs[0].Name = "svc-a" // TCP port 80 only
	in.UDPRoutes = append(in.UDPRoutes, tcpOnly)
	for _, name := range []string{"a", "b"} {
		svc, slice := udpService("dns-"+name, udpEcho(t, name))
		in.Services = append(in.Services, svc)
		in.EndpointSlices = append(in.EndpointSlices, slice)
	}
	tab := Build(in)
	ps := tab.Gateway.UDPRoutes[types.NamespacedName{Namespace: "ns", Name: "tcp-only"}]
	wantCondition(t, "UDPRoute to a TCP port", ps[0].Conditions, string(gwv1.RouteConditionResolvedRefs), metav1.ConditionFalse, string(gwv1.RouteReasonBackendNotFound))
	ps = tab.Gateway.UDPRoutes[types.NamespacedName{Namespace: "ns", Name: "dns"}]
	if len(ps) != 1 {
		t.Fatalf("UDPRoute: %d parent statuses, want 1", len(ps))
	}
	wantCondition(t, "UDPRoute", ps[0].Conditions, string(gwv1.RouteConditionAccepted), metav1.ConditionTrue, string(gwv1.RouteReasonAccepted))
	if got := tab.Ports()[udpPortKey(5300)]; got != ProtoUDP {
		t.Fatalf("port 5300 speaks %s, want UDP", got)
	}

	f := newFixture(t, ProxyConfig{})
	f.p.SetTable(tab)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u, err := newUDPProxy(pc, f.p, 5300)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })

	ask := func(c *net.UDPConn, msg string) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer through the UDP proxy: %v", err)
		}
		return string(buf[:n])
	}
	seen := map[string]int{}
	for i := range 4 {
		c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		first := ask(c, "hello")
		if second := ask(c, "again"); second[:2] != first[:2] || second[2:] != "again" {
			t.Errorf("client %d: answers %q then %q, want one backend echoing both", i, first, second)
		}
		seen[first[:1]]++
		c.Close()
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("four clients over two backends weighted 1:1 went %v, want 2 and 2", seen)
	}

	// The port's IPv6 socket serves IPv6 clients alike, answering from the
	// address they wrote to.
	pc6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	u6, err := newUDPProxy(pc6, f.p, 5300)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u6.Close() })
	for i := range 2 {
		c, err := net.DialUDP("udp6", nil, pc6.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		first := ask(c, "hello6")
		if first[1:] != ":hello6" || ask(c, "again")[:1] != first[:1] {
			t.Errorf("IPv6 client %d: answer %q, want one backend echoing both datagrams", i, first)
		}
		c.Close()
	}
}

// TestTCPAndUDPOnOnePort: a UDP listener shares its port number with a TCP
// listener, or with the HTTP port, without a conflict: UDP ports are apart
// from TCP's, and each carries its own route.
func TestTCPAndUDPOnOnePort(t *testing.T) {
	gw := makeGateway("ns", "gw").
		listener("dns-tcp", gwv1.TCPProtocolType, 5353, "").
		listener("dns-udp", gwv1.UDPProtocolType, 5353, "").
		listener("quic", gwv1.UDPProtocolType, HTTPPort, "").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	tcp := tcpRoute("tcp", 1, "svc-a")
	tcp.Spec.ParentRefs[0].SectionName = ptr.To(gwv1.SectionName("dns-tcp"))
	in.TCPRoutes = []*gwv1.TCPRoute{tcp}
	in.UDPRoutes = []*gwv1.UDPRoute{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "udp", Generation: 1, CreationTimestamp: metav1.NewTime(epoch)},
		Spec: gwv1.UDPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", SectionName: ptr.To(gwv1.SectionName("dns-udp"))}}},
			Rules: []gwv1.UDPRouteRule{{BackendRefs: []gwv1.BackendRef{
				{BackendObjectReference: gwv1.BackendObjectReference{Name: "dns-a", Port: ptr.To(gwv1.PortNumber(80))}},
			}}},
		},
	}}
	svc, slice := udpService("dns-a", netip.MustParseAddrPort("127.0.0.1:53"))
	in.Services = append(in.Services, svc)
	in.EndpointSlices = append(in.EndpointSlices, slice)
	tab := Build(in)

	gs := tab.Gateway.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	for i, name := range []string{"dns-tcp", "dns-udp", "quic"} {
		wantCondition(t, name+" listener", gs.Listeners[i].Conditions, string(gwv1.ListenerConditionConflicted), metav1.ConditionFalse, string(gwv1.ListenerReasonNoConflicts))
		wantCondition(t, name+" listener", gs.Listeners[i].Conditions, string(gwv1.ListenerConditionProgrammed), metav1.ConditionTrue, string(gwv1.ListenerReasonProgrammed))
	}
	ports := tab.Ports()
	if ports[5353] != ProtoTCP || ports[udpPortKey(5353)] != ProtoUDP || ports[HTTPPort] != ProtoHTTP || ports[udpPortKey(HTTPPort)] != ProtoUDP {
		t.Errorf("Ports() = %v, want 5353 TCP and UDP, 80 HTTP and UDP", ports)
	}
	if rt := tab.MatchPort(nil, 5353); rt == nil || rt.Source.Name != "tcp" {
		t.Errorf("TCP port 5353 is served by %+v, want TCPRoute tcp", rt)
	}
	if rt := tab.MatchPort(nil, udpPortKey(5353)); rt == nil || rt.Source.Name != "udp" {
		t.Errorf("UDP port 5353 is served by %+v, want UDPRoute udp", rt)
	}
}
