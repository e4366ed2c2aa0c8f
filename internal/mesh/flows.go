package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// dialTimeout bounds a connection to a pod or an outside destination.
const dialTimeout = 5 * time.Second

// certWait is how long a new connection waits for its identity's first
// certificate.
const certWait = 5 * time.Second

// outbound carries a connection an enrolled pod of this node opened: to an
// enrolled destination through a tunnel, to anything else directly.
func (p *Proxy) outbound(ctx context.Context, c net.Conn) {
	defer c.Close()
	dst, src, ok := captured(c)
	if !ok {
		return
	}
	srcPod := p.localEnrolledPod(src.Addr())
	if srcPod == nil {
		return // not (or no longer) an enrolled pod of this node
	}
	srcID := IdentityOf(srcPod)
	d, err := Route(p.world, dst, pick)
	f := flow{reporter: "source", srcWorkload: Workload(srcPod), srcNamespace: srcPod.Namespace, srcPrincipal: p.spiffe(srcID), protocol: "tcp"}
	f.setDestination(d, p)
	if err != nil {
		p.metrics.denied.WithLabelValues("no_healthy_upstream", f.dstNamespace).Inc()
		return
	}
	if d.Service != nil && p.cfg.Routes != nil {
		svc := types.NamespacedName{Namespace: d.Service.Namespace, Name: d.Service.Name}
		if p.cfg.Routes.HasMeshRoutes(svc, int32(dst.Port())) {
			first, rd := sniff(c)
			c = &prefixConn{Conn: c, r: rd}
			if isHTTP1(first) || isHTTP2(first) {
				t := p.transportFor(srcID, src.Addr())
				if h := p.cfg.Routes.MeshHandler(svc, int32(dst.Port()), srcPod.Namespace, t.h1, t.h2c); h != nil {
					p.routed(ctx, h, f, c)
					return
				}
			}
		}
	}
	var up halfCloser
	if d.Mesh {
		dstID := IdentityOf(d.Pod)
		node, err := netip.ParseAddr(d.Pod.Status.HostIP)
		if err != nil {
			return
		}
		cert, roots, err := p.ids.Get(ctx, srcID, certWait)
		if err != nil {
			p.metrics.denied.WithLabelValues("no_certificate", f.dstNamespace).Inc()
			p.cfg.Log.Warn("mesh connection without a certificate", "source", srcID, "err", err)
			return
		}
		service := ""
		if d.Service != nil {
			service = d.Service.Namespace + "/" + d.Service.Name
		}
		s, err := p.tunnels.open(ctx, tunnelKey{src: srcID, dst: dstID, node: node}, clientTLS(cert, roots, dstID, p.cfg.TrustDomain), d.Addr, src.Addr(), service)
		if err != nil {
			var refused *refusedError
			if errors.As(err, &refused) && refused.status == http.StatusForbidden {
				p.metrics.denied.WithLabelValues("denied_by_destination", f.dstNamespace).Inc()
				p.cfg.Log.Debug("mesh tunnel", "source", srcID, "destination", d.Addr, "err", err)
				return
			}
			p.metrics.denied.WithLabelValues("tunnel_failed", f.dstNamespace).Inc()
			p.cfg.Log.Warn("mesh tunnel", "source", srcID, "destination", d.Addr, "err", err)
			return
		}
		up = s
		f.security = "mutual_tls"
	} else {
		conn, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", d.Addr.String())
		if err != nil {
			return
		}
		up = conn.(*net.TCPConn)
		f.security = "none"
	}
	client, ok := c.(halfCloser)
	if !ok {
		client = &readerConn{halfCloser: c.(*prefixConn).Conn.(*net.TCPConn), r: c}
	}
	p.track(ctx, f, client, up)
}

// inboundPlaintext carries a connection to an enrolled pod of this node
// from a source outside the mesh: refused in strict mode, passed on in
// permissive mode.
func (p *Proxy) inboundPlaintext(ctx context.Context, c net.Conn) {
	defer c.Close()
	dst, src, ok := captured(c)
	if !ok {
		return
	}
	pod := p.localEnrolledPod(dst.Addr())
	if pod == nil {
		return
	}
	f := flow{reporter: "destination", protocol: "tcp", security: "none"}
	if sp := p.world.PodByIP(src.Addr()); sp != nil {
		f.srcWorkload, f.srcNamespace = Workload(sp), sp.Namespace
	}
	f.setDestination(Destination{Addr: dst, Pod: pod}, p)
	ok, perRequest := p.admit(ctx, pod, dst.Port(), Identity{}, src.Addr())
	if !ok {
		return
	}
	conn, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return
	}
	p.serveInbound(ctx, f, c.(*net.TCPConn), conn.(*net.TCPConn), pod, Identity{}, src.Addr(), dst.Port(), perRequest)
}

// admit decides a connection from peer (the zero Identity when not
// authenticated) at address from to pod's port. perRequest is set when the
// policies refuse it as plain TCP but name HTTP attributes: HTTP requests
// on it are decided one by one, anything else is refused. A refusal is
// counted and reported on the pod.
func (p *Proxy) admit(ctx context.Context, pod *corev1.Pod, port uint16, peer Identity, from netip.Addr) (ok, perRequest bool) {
	ps := p.policies.Load()
	reason, msg, ok := ps.Admit(pod, port, peer, from, p.cfg.TrustDomain)
	if ok {
		return true, false
	}
	if reason == "denied_by_policy" && ps.decidesPerRequest(pod) {
		return true, true
	}
	p.deny(ctx, pod, port, peer, from, reason, msg)
	return false, false
}

// admitRequest decides one HTTP request of an admitted connection.
func (p *Proxy) admitRequest(ctx context.Context, pod *corev1.Pod, port uint16, peer Identity, from netip.Addr, r *http.Request) bool {
	reason, msg, ok := p.policies.Load().AdmitRequest(pod, port, peer, from, p.cfg.TrustDomain, r)
	if !ok {
		p.deny(ctx, pod, port, peer, from, reason, r.Method+" "+r.URL.Path+": "+msg)
	}
	return ok
}

// deny counts a refusal and reports it on the pod.
func (p *Proxy) deny(ctx context.Context, pod *corev1.Pod, port uint16, peer Identity, from netip.Addr, reason, msg string) {
	p.metrics.denied.WithLabelValues(reason, pod.Namespace).Inc()
	src := "plaintext client " + from.String()
	if peer != (Identity{}) {
		src = p.spiffe(peer) + " (" + from.String() + ")"
	}
	p.denials.report(ctx, pod, reason, fmt.Sprintf("connection from %s to port %d refused: %s", src, port, msg))
}

// serveInbound serves an admitted connection to pod: HTTP/1.x and HTTP/2
// (h2c, gRPC) request by request, anything else spliced (or refused when only HTTP requests could
// have been allowed).
func (p *Proxy) serveInbound(ctx context.Context, f flow, client halfCloser, up *net.TCPConn, pod *corev1.Pod, peer Identity, from netip.Addr, port uint16, perRequest bool) {
	first, rd := sniff(client)
	switch {
	case isHTTP1(first):
		p.serveHTTP1(ctx, f, client, rd, up, pod, peer, from, port)
	case isHTTP2(first):
		p.serveHTTP2(ctx, f, client, rd, up, pod, peer, from, port)
	case perRequest:
		p.deny(ctx, pod, port, peer, from, "denied_by_policy", "not HTTP, and the policies allow only HTTP requests")
		client.Close()
		up.Close()
	default:
		p.track(ctx, f, &readerConn{halfCloser: client, r: rd}, up)
	}
}

// serveTunnel serves one node proxy's tunnel connection.
func (p *Proxy) serveTunnel(ctx context.Context, c *tls.Conn) {
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.HandshakeContext(hctx)
	cancel()
	if err != nil {
		p.metrics.denied.WithLabelValues("tls_handshake", "unknown").Inc()
		p.cfg.Log.Debug("mesh tunnel handshake", "remote", c.RemoteAddr(), "err", err)
		return
	}
	// http2.Server.ServeConn leaves Request.TLS unset: the handler gets
	// the connection's state from here.
	cs := c.ConnectionState()
	srv := &http2.Server{IdleTimeout: 5 * time.Minute}
	srv.ServeConn(c, &http2.ServeConnOpts{Context: ctx, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.tunnelStream(ctx, &cs, w, r)
	})})
}

// tunnelStream connects one CONNECT stream to its pod.
func (p *Proxy) tunnelStream(ctx context.Context, cs *tls.ConnectionState, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	peer, err := p.peerOf(cs)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	target, err := netip.ParseAddrPort(r.Host)
	if err != nil {
		http.Error(w, "bad target: "+err.Error(), http.StatusBadRequest)
		return
	}
	pod := p.localEnrolledPod(target.Addr())
	if pod == nil {
		http.Error(w, fmt.Sprintf("%s is not an enrolled pod of node %s", target.Addr(), p.cfg.NodeName), http.StatusNotFound)
		return
	}
	if id, _ := ParseServerName(cs.ServerName); id != IdentityOf(pod) {
		http.Error(w, fmt.Sprintf("pod %s/%s is not of identity %s", pod.Namespace, pod.Name, id), http.StatusMisdirectedRequest)
		return
	}
	from := forwardedFor(r.Header.Get("Forwarded"))
	f := flow{reporter: "destination", protocol: "tcp", security: "mutual_tls", srcPrincipal: p.spiffe(peer), srcNamespace: peer.Namespace}
	if sp := p.world.PodByIP(from); sp != nil && IdentityOf(sp) == peer {
		f.srcWorkload = Workload(sp)
	}
	f.setDestination(Destination{Addr: target, Pod: pod}, p)
	if svcNS, svcName, ok := strings.Cut(r.Header.Get(serviceHeader), "/"); ok && svcNS == pod.Namespace {
		f.setService(svcNS, svcName, p.cfg.TrustDomain)
	}
	ok, perRequest := p.admit(ctx, pod, target.Port(), peer, from)
	if !ok {
		http.Error(w, "RBAC: access denied", http.StatusForbidden)
		return
	}
	conn, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", target.String())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	if err := http.NewResponseController(w).Flush(); err != nil {
		conn.Close()
		return
	}
	s := &serverStream{r: r.Body, w: w, done: make(chan struct{})}
	go p.serveInbound(ctx, f, s, conn.(*net.TCPConn), pod, peer, from, target.Port(), perRequest)
	select {
	case <-s.done:
	case <-ctx.Done():
		// No write may reach w once the handler returns.
		s.CloseWrite()
		conn.Close()
	}
}

// closeWhenDone closes a connection's two sides when ctx ends (a run
// stopping), so that no copy between them outlives it; the returned func
// cancels that once the connection is done.
func closeWhenDone(ctx context.Context, a, b io.Closer) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		a.Close()
		b.Close()
	})
}

// track splices client and upstream and counts the connection; both end
// when ctx does.
func (p *Proxy) track(ctx context.Context, f flow, client, upstream halfCloser) {
	defer closeWhenDone(ctx, client, upstream)()
	v := f.values()
	p.metrics.tcpOpened.WithLabelValues(v...).Inc()
	up, down := splice(client, upstream)
	p.metrics.tcpReceived.WithLabelValues(v...).Add(float64(up))
	p.metrics.tcpSent.WithLabelValues(v...).Add(float64(down))
	p.metrics.tcpClosed.WithLabelValues(v...).Inc()
}

// setDestination fills f's destination labels from d.
func (f *flow) setDestination(d Destination, p *Proxy) {
	if d.Pod != nil {
		f.dstWorkload, f.dstNamespace = Workload(d.Pod), d.Pod.Namespace
		if d.Mesh || f.reporter == "destination" {
			f.dstPrincipal = p.spiffe(IdentityOf(d.Pod))
		}
	}
	if d.Service != nil {
		f.setService(d.Service.Namespace, d.Service.Name, p.cfg.TrustDomain)
	}
}

// setService fills f's destination Service labels (the host name as
// Istio's destination_service writes it).
func (f *flow) setService(ns, name, clusterDomain string) {
	f.dstServiceName, f.dstServiceNamespace = name, ns
	f.dstService = name + "." + ns + ".svc." + clusterDomain
}

// forwardedFor is the client address of a Forwarded header's for= (RFC
// 7239), or the zero Addr.
func forwardedFor(h string) netip.Addr {
	for _, part := range strings.Split(h, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(k, "for") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		a, _ := netip.ParseAddr(v)
		return a
	}
	return netip.Addr{}
}

// captured is a redirected connection's original destination and its
// client; ok is false for a connection made to the proxy's port directly.
func captured(c net.Conn) (dst, src netip.AddrPort, ok bool) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return dst, src, false
	}
	dst, err := originalDst(tc)
	if err != nil {
		return dst, src, false
	}
	local := tc.LocalAddr().(*net.TCPAddr).AddrPort()
	src = tc.RemoteAddr().(*net.TCPAddr).AddrPort()
	if dst.Addr().Unmap() == local.Addr().Unmap() && dst.Port() == local.Port() {
		return dst, src, false
	}
	return dst, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), true
}

// originalDst is the destination a connection had before the capture
// rule redirected it (SO_ORIGINAL_DST, from conntrack).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var dst netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		// The kernel writes a sockaddr_in; an IPv6Mreq is a 20-byte
		// buffer that holds it.
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			serr = err
			return
		}
		b := m.Multiaddr
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), uint16(b[2])<<8|uint16(b[3]))
	})
	if err == nil {
		err = serr
	}
	return dst, err
}
