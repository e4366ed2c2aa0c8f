package ingress

import (
	"errors"
	"net"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDPIdleTimeout ends a UDP session that has carried no datagram either
// way for this long.
const UDPIdleTimeout = time.Minute

// udpProxy serves a UDP listener's port on one socket (IPv4 or IPv6; a
// port has one of each). Each client address and
// port, with the address it wrote to, is a session: a socket connected to
// one endpoint of the port's UDPRoute, chosen at the first datagram and
// kept while datagrams flow; the endpoint's answers go back to the client
// from the address the client wrote to (a Gateway's own, say).
type udpProxy struct {
	p    *Proxy
	port int
	pc   datagramConn
	raw  net.PacketConn

	mu       sync.Mutex
	sessions map[udpKey]*net.UDPConn
	closed   bool
}

type udpKey struct{ client, local string }

// datagramConn reads datagrams with the address each was sent to, and
// writes from a given local address: IP_PKTINFO on IPv4, IPV6_PKTINFO on
// IPv6.
type datagramConn interface {
	readFrom(b []byte) (n int, dst net.IP, src net.Addr, err error)
	writeFrom(b []byte, src net.IP, dst net.Addr) error
}

type pktinfo4 struct{ *ipv4.PacketConn }

func (c pktinfo4) readFrom(b []byte) (int, net.IP, net.Addr, error) {
	n, cm, src, err := c.ReadFrom(b)
	if cm == nil {
		return n, nil, src, err
	}
	return n, cm.Dst, src, err
}

func (c pktinfo4) writeFrom(b []byte, src net.IP, dst net.Addr) error {
	_, err := c.WriteTo(b, &ipv4.ControlMessage{Src: src}, dst)
	return err
}

type pktinfo6 struct{ *ipv6.PacketConn }

func (c pktinfo6) readFrom(b []byte) (int, net.IP, net.Addr, error) {
	n, cm, src, err := c.ReadFrom(b)
	if cm == nil {
		return n, nil, src, err
	}
	return n, cm.Dst, src, err
}

func (c pktinfo6) writeFrom(b []byte, src net.IP, dst net.Addr) error {
	_, err := c.WriteTo(b, &ipv6.ControlMessage{Src: src}, dst)
	return err
}

func newUDPProxy(raw net.PacketConn, p *Proxy, port int) (*udpProxy, error) {
	var pc datagramConn
	if a, ok := raw.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		c := ipv6.NewPacketConn(raw)
		if err := c.SetControlMessage(ipv6.FlagDst, true); err != nil {
			return nil, err
		}
		pc = pktinfo6{c}
	} else {
		c := ipv4.NewPacketConn(raw)
		if err := c.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return nil, err
		}
		pc = pktinfo4{c}
	}
	u := &udpProxy{p: p, port: port, pc: pc, raw: raw, sessions: map[udpKey]*net.UDPConn{}}
	go u.serve()
	return u, nil
}

// Close stops the port and ends every session.
func (u *udpProxy) Close() error {
	u.mu.Lock()
	u.closed = true
	for k, s := range u.sessions {
		s.Close()
		delete(u.sessions, k)
	}
	u.mu.Unlock()
	return u.raw.Close()
}

func (u *udpProxy) serve() {
	buf := make([]byte, 64<<10)
	for {
		n, dst, src, err := u.pc.readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		client, ok := src.(*net.UDPAddr)
		if !ok || dst == nil {
			continue
		}
		up := u.session(client, dst)
		if up == nil {
			continue
		}
		up.SetReadDeadline(time.Now().Add(UDPIdleTimeout))
		up.Write(buf[:n])
	}
}

// session returns the session of client writing to local, starting one
// when there is none; nil when no route takes the datagram.
func (u *udpProxy) session(client *net.UDPAddr, local net.IP) *net.UDPConn {
	k := udpKey{client.String(), local.String()}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.sessions[k]; s != nil || u.closed {
		return s
	}
	t := u.p.Table()
	if t == nil {
		return nil
	}
	rt := t.MatchPort(&net.UDPAddr{IP: local, Port: u.port}, udpPortKey(u.port))
	if rt == nil {
		return nil
	}
	ep, ok := u.p.streamEndpoint(rt, client)
	if !ok {
		return nil
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ep.Addr))
	if err != nil {
		u.p.cfg.Log.Debug("UDPRoute backend unreachable", "route", rt.Source.String(), "endpoint", ep.Addr.String(), "err", err)
		return nil
	}
	u.sessions[k] = up
	go u.answer(k, up, client, local)
	return up
}

// answer sends the endpoint's datagrams back to the client until the
// session is idle for UDPIdleTimeout or the port closes.
func (u *udpProxy) answer(k udpKey, up *net.UDPConn, client *net.UDPAddr, local net.IP) {
	defer func() {
		u.mu.Lock()
		if u.sessions[k] == up {
			delete(u.sessions, k)
		}
		u.mu.Unlock()
		up.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		up.SetReadDeadline(time.Now().Add(UDPIdleTimeout))
		n, err := up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error for an earlier datagram, say
		}
		_ = u.pc.writeFrom(buf[:n], local, client)
	}
}
