package ingress

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func tlsRoute(name, section string, hosts []string, backend string) *gwv1.TLSRoute {
	r := &gwv1.TLSRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 5, CreationTimestamp: metav1.NewTime(epoch)},
		Spec: gwv1.TLSRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", SectionName: ptr.To(gwv1.SectionName(section))}}},
			Rules: []gwv1.TLSRouteRule{{BackendRefs: []gwv1.BackendRef{{
				BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(backend), Port: ptr.To(gwv1.PortNumber(80))},
			}}}},
		},
	}
	for _, h := range hosts {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gwv1.Hostname(h))
	}
	return r
}

// tlsGatewayState is a Gateway on port 443 with a passthrough listener for
// *.pass.test, a terminating TLS listener for term.test and an HTTPS
// listener for web.test, and TLSRoutes to svc-a (passthrough) and svc-b
// (terminated), plus one that names the HTTPS listener.
func tlsGatewayState(t *testing.T) State {
	gw := makeGateway("ns", "gw").
		listener("pass", gwv1.TLSProtocolType, 443, "*.pass.test").
		listener("term", gwv1.TLSProtocolType, 443, "term.test").cert("", "term-cert").
		listener("web", gwv1.HTTPSProtocolType, 443, "web.test").cert("", "web-cert").obj()
	gw.Spec.Listeners[0].TLS = &gwv1.ListenerTLSConfig{Mode: ptr.To(gwv1.TLSModePassthrough)}
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	in.TLSRoutes = []*gwv1.TLSRoute{
		tlsRoute("pass", "pass", []string{"a.pass.test"}, "svc-a"),
		tlsRoute("term", "term", []string{"term.test"}, "svc-b"),
		tlsRoute("on-https", "web", []string{"web.test"}, "svc-a"),
	}
	in.Secrets = []*corev1.Secret{validSecret(t, "ns", "term-cert", "term.test"), validSecret(t, "ns", "web-cert", "web.test")}
	return in
}

func TestTLSRouteStatusAndMatch(t *testing.T) {
	tab := Build(tlsGatewayState(t))
	gs := tab.Gateway.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	for i, want := range []string{KindTLSRoute, KindTLSRoute, KindHTTPRoute} {
		l := gs.Listeners[i]
		wantCondition(t, "listener "+string(l.Name), l.Conditions, string(gwv1.ListenerConditionProgrammed), metav1.ConditionTrue, string(gwv1.ListenerReasonProgrammed))
		if len(l.SupportedKinds) == 0 || l.SupportedKinds[0].Kind != gwv1.Kind(want) {
			t.Errorf("listener %s supportedKinds = %v, want %s first", l.Name, l.SupportedKinds, want)
		}
	}
	for name, reason := range map[string]gwv1.RouteConditionReason{"pass": gwv1.RouteReasonAccepted, "term": gwv1.RouteReasonAccepted, "on-https": gwv1.RouteReasonNotAllowedByListeners} {
		ps := tab.Gateway.TLSRoutes[types.NamespacedName{Namespace: "ns", Name: name}]
		if len(ps) != 1 {
			t.Fatalf("TLSRoute %s: %d parent statuses, want 1", name, len(ps))
		}
		status := metav1.ConditionTrue
		if reason != gwv1.RouteReasonAccepted {
			status = metav1.ConditionFalse
		}
		wantCondition(t, "TLSRoute "+name, ps[0].Conditions, string(gwv1.RouteConditionAccepted), status, string(reason))
	}
	for _, tt := range []struct {
		sni       string
		route     string
		terminate bool
		https     bool
	}{
		{"a.pass.test", "pass", false, false},
		{"A.Pass.Test.", "pass", false, false},
		{"b.pass.test", "", false, false}, // the passthrough listener's name, no route: closed
		{"term.test", "term", true, false},
		{"web.test", "", false, true},
		{"other.test", "", false, true}, // the Ingress HTTPS port's default
	} {
		rt, https := tab.MatchTLS(nil, 443, tt.sni)
		got := ""
		if rt != nil {
			got = rt.Source.Name
			if rt.Terminate != tt.terminate {
				t.Errorf("%s: terminate = %v, want %v", tt.sni, rt.Terminate, tt.terminate)
			}
		}
		if got != tt.route || https != tt.https {
			t.Errorf("MatchTLS(%s) = %q https=%v, want %q https=%v", tt.sni, got, https, tt.route, tt.https)
		}
	}
	if !tab.tlsPort(443) || tab.tlsPort(80) {
		t.Errorf("tlsPort(443) = %v, tlsPort(80) = %v; want true, false", tab.tlsPort(443), tab.tlsPort(80))
	}
}

// tcpServer accepts on 127.0.0.1 and answers each connection with greet(c)
// then echoes what it reads.
func tcpServer(t *testing.T, wrap func(net.Conn) net.Conn, greet func(net.Conn) string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c = wrap(c)
				io.WriteString(c, greet(c)+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestTLSRouteProxy drives real TLS clients through the port's demux: a
// passthrough route reaches a backend that terminates TLS itself (with its
// own certificate, seeing the client's SNI), a terminating route presents
// the listener's certificate and sends plain bytes on, a name the
// passthrough listener claims without a route is closed, and the HTTPS
// listener still serves its host.
func TestTLSRouteProxy(t *testing.T) {
	in := tlsGatewayState(t)
	backendCert := validSecret(t, "ns", "backend", "a.pass.test")
	pair, err := tls.X509KeyPair(backendCert.Data[corev1.TLSCertKey], backendCert.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	a := tcpServer(t, func(c net.Conn) net.Conn {
		return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}})
	}, func(c net.Conn) string {
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			return "handshake: " + err.Error()
		}
		return "backend-tls " + tc.ConnectionState().ServerName
	})
	b := tcpServer(t, func(c net.Conn) net.Conn { return c }, func(net.Conn) string { return "backend-plain" })
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", a), sliceFor("ns", "svc-b", b))

	f := newFixture(t, ProxyConfig{})
	f.p.SetTable(Build(in))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.p.ServerFor(443, true)
	go srv.ServeTLS(newTLSDemux(ln, f.p, 443), "", "")
	t.Cleanup(func() { srv.Close() })

	dial := func(sni string) (*tls.Conn, string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			return nil, "", err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return c, string(buf[:n]), err
	}
	c, greeting, err := dial("a.pass.test")
	if err != nil || greeting != "backend-tls a.pass.test\n" {
		t.Fatalf("passthrough: %q %v, want the backend's TLS greeting", greeting, err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].DNSNames; len(cn) == 0 || cn[0] != "a.pass.test" {
		t.Errorf("passthrough: peer certificate names %v, want the backend's a.pass.test", cn)
	}
	io.WriteString(c, "ping\n")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("passthrough echo = %q %v", buf, err)
	}
	c.Close()

	c, greeting, err = dial("term.test")
	if err != nil || greeting != "backend-plain\n" {
		t.Fatalf("terminate: %q %v, want the plain backend's greeting", greeting, err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].DNSNames; len(cn) == 0 || cn[0] != "term.test" {
		t.Errorf("terminate: peer certificate names %v, want the listener's term.test", cn)
	}
	c.Close()

	if _, _, err := dial("b.pass.test"); err == nil {
		t.Error("a name the passthrough listener claims, with no route: the connection was served")
	}

	// Not TLS at all, on a port that also serves HTTPS: the HTTPS server
	// answers it as it answers any plain request.
	pc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(pc, "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
	if reply, _ := io.ReadAll(pc); !strings.Contains(string(reply), "400") {
		t.Errorf("plain HTTP on the TLS port got %q, want the HTTPS server's 400", reply)
	}
	pc.Close()

	// The HTTPS listener on the same port.
	hc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{ServerName: "web.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("HTTPS beside TLS listeners: %v", err)
	}
	if cn := hc.ConnectionState().PeerCertificates[0].DNSNames; len(cn) == 0 || cn[0] != "web.test" {
		t.Errorf("HTTPS: peer certificate names %v, want web.test", cn)
	}
	hc.Close()
}

func tcpRoute(name string, age int, backends ...string) *gwv1.TCPRoute {
	r := &gwv1.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 6, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))},
		Spec: gwv1.TCPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules:           []gwv1.TCPRouteRule{{}},
		},
	}
	for i, b := range backends {
		r.Spec.Rules[0].BackendRefs = append(r.Spec.Rules[0].BackendRefs, gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(b), Port: ptr.To(gwv1.PortNumber(80))},
			Weight:                 ptr.To(int32(3 - 2*i)), // 3, 1
		})
	}
	return r
}

// TestTCPRoute: two TCPRoutes on one TCP listener are both accepted and
// counted, the older one serves it, with its backends weighted 3:1; a TCP
// listener cannot share a port with HTTP.
func TestTCPRoute(t *testing.T) {
	gw := makeGateway("ns", "gw").listener("tcp", gwv1.TCPProtocolType, 9000, "").
		listener("clash", gwv1.TCPProtocolType, 80, "").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	in.TCPRoutes = []*gwv1.TCPRoute{tcpRoute("newer", 5, "svc-b"), tcpRoute("older", 1, "svc-a", "svc-b")}
	in.TCPRoutes[0].Spec.ParentRefs[0].SectionName = ptr.To(gwv1.SectionName("tcp"))
	in.TCPRoutes[1].Spec.ParentRefs[0].SectionName = ptr.To(gwv1.SectionName("tcp"))
	a := tcpServer(t, func(c net.Conn) net.Conn { return c }, func(net.Conn) string { return "a" })
	b := tcpServer(t, func(c net.Conn) net.Conn { return c }, func(net.Conn) string { return "b" })
	in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", a), sliceFor("ns", "svc-b", b))
	tab := Build(in)

	gs := tab.Gateway.Gateways[types.NamespacedName{Namespace: "ns", Name: "gw"}]
	if l := gs.Listeners[0]; l.AttachedRoutes != 2 || len(l.SupportedKinds) != 1 || l.SupportedKinds[0].Kind != KindTCPRoute {
		t.Errorf("tcp listener: attachedRoutes %d supportedKinds %v, want 2 and TCPRoute", l.AttachedRoutes, l.SupportedKinds)
	}
	wantCondition(t, "listener on the HTTP port", gs.Listeners[1].Conditions, string(gwv1.ListenerConditionConflicted), metav1.ConditionTrue, string(gwv1.ListenerReasonProtocolConflict))
	for _, name := range []string{"older", "newer"} {
		ps := tab.Gateway.TCPRoutes[types.NamespacedName{Namespace: "ns", Name: name}]
		wantCondition(t, "TCPRoute "+name, ps[0].Conditions, string(gwv1.RouteConditionAccepted), metav1.ConditionTrue, string(gwv1.RouteReasonAccepted))
	}
	if got := tab.Ports()[9000]; got != ProtoTCP {
		t.Errorf("port 9000 speaks %s, want TCP", got)
	}

	count := greetings(t, tab, 8)
	if count["a"] != 6 || count["b"] != 2 {
		t.Errorf("the older route's 3:1 backends over 8 connections gave %v, want a:6 b:2", count)
	}
}

// FuzzReadClientHello: whatever a client sends first, readClientHello
// returns, and the bytes it hands back for replay are a prefix of what was
// sent, so that nothing the client wrote is lost or invented.
func FuzzReadClientHello(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, read, _ := readClientHello(bytes.NewReader(data))
		if !bytes.HasPrefix(data, read) {
			t.Fatalf("replay bytes %x are not a prefix of the input %x", read, data)
		}
	})
}

// TestStreamRouteClientAffinity: a Service annotated for consistent
// hashing on the client's address keeps a TCPRoute's connections from one
// client on one endpoint (round robin would alternate).
func TestStreamRouteClientAffinity(t *testing.T) {
	gw := makeGateway("ns", "gw").listener("tcp", gwv1.TCPProtocolType, 9000, "").obj()
	in := gatewayState([]*gwv1.Gateway{gw}, nil)
	in.TCPRoutes = []*gwv1.TCPRoute{tcpRoute("r", 1, "svc-a")}
	in.Services[0].Annotations = map[string]string{AnnLoadBalance: string(ConsistentHash)} // svc-a; hash-on defaults to client-ip
	for _, name := range []string{"a", "b"} {
		addr := tcpServer(t, func(c net.Conn) net.Conn { return c }, func(net.Conn) string { return name })
		in.EndpointSlices = append(in.EndpointSlices, sliceFor("ns", "svc-a", addr))
	}
	seen := greetings(t, Build(in), 6)
	if len(seen) != 1 {
		t.Errorf("one client's connections went to %v, want one endpoint", seen)
	}
}

// greetings serves tab's TCP port 9000 through a proxy, opens n connections
// to it and counts the one-letter greetings of the backends reached.
func greetings(t *testing.T, tab *Table, n int) map[string]int {
	t.Helper()
	f := newFixture(t, ProxyConfig{})
	f.p.SetTable(tab)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newTCPDemux(ln, f.p, 9000)
	t.Cleanup(func() { d.Close() })
	count := map[string]int{}
	for range n {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("TCP through the proxy: %v", err)
		}
		count[string(buf[:1])]++
		c.Close()
	}
	return count
}
