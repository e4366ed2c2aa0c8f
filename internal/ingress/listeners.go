package ingress

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
)

// served is one open listener.
type served struct {
	stop  func(context.Context) // shuts it down, letting requests in flight end
	proto Proto
	addr  net.Addr
}

// listeners keeps one server per port of the current table: the Ingress
// ports at the configured HTTP and HTTPS addresses, and each Gateway
// listener port at the same host as the HTTP address.
type listeners struct {
	c      *Controller
	wg     sync.WaitGroup
	open   map[int]*served
	failed map[int]string // ports that could not be bound, and why (logged once)
	first  error          // an Ingress port that could not be bound
	errc   chan error     // serve errors of the Ingress ports
}

// addrFor is where the listener of port binds.
func (ls *listeners) addrFor(port int) string {
	switch port {
	case HTTPPort:
		return ls.c.cfg.HTTPAddr
	case HTTPSPort:
		return ls.c.cfg.HTTPSAddr
	}
	host, _, _ := net.SplitHostPort(ls.c.cfg.HTTPAddr)
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// reconcile opens the ports t serves and closes the others. An Ingress
// port that cannot be bound is an error (see err); a Gateway listener port
// is logged and tried again at the next rebuild.
func (ls *listeners) reconcile(ctx context.Context, t *Table) {
	want := t.Ports()
	for _, port := range slices.Sorted(maps.Keys(ls.open)) {
		s := ls.open[port]
		if proto, ok := want[port]; ok && proto == s.proto {
			continue
		}
		delete(ls.open, port)
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			s.stop(ctx)
		}()
	}
	for _, port := range slices.Sorted(maps.Keys(want)) {
		if _, ok := ls.open[port]; ok {
			continue
		}
		proto := want[port]
		if proto == ProtoUDP {
			u, err := ls.listenUDP(portNumber(port))
			if err != nil {
				ls.bindFailed(port, err)
				continue
			}
			delete(ls.failed, port)
			ls.open[port] = &served{stop: func(context.Context) {
				for _, p := range u {
					p.Close()
				}
			}, proto: proto, addr: u[0].raw.LocalAddr()}
			continue
		}
		ln, err := net.Listen("tcp", ls.addrFor(port))
		if err != nil {
			if port == HTTPPort || port == HTTPSPort {
				ls.first = cmp.Or(ls.first, err)
				continue
			}
			ls.bindFailed(port, err)
			continue
		}
		delete(ls.failed, port)
		if proto == ProtoTCP {
			d := newTCPDemux(ln, ls.c.proxy, port)
			ls.open[port] = &served{stop: func(context.Context) { d.Close() }, proto: proto, addr: ln.Addr()}
			continue
		}
		srv := ls.c.proxy.ServerFor(port, proto == ProtoTLS)
		ls.open[port] = &served{stop: func(ctx context.Context) { ls.stop(ctx, srv) }, proto: proto, addr: ln.Addr()}
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			var err error
			if proto == ProtoTLS {
				err = srv.ServeTLS(newTLSDemux(ln, ls.c.proxy, port), "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				if port == HTTPPort || port == HTTPSPort {
					ls.errc <- err
				} else {
					ls.c.cfg.Log.Warn("Gateway listener port stopped serving", "port", port, "err", err)
				}
			}
		}()
	}
	ls.publish()
}

// bindFailed logs, once per error, that a Gateway listener port could not
// be bound; the next reconcile tries again.
func (ls *listeners) bindFailed(port int, err error) {
	if ls.failed == nil {
		ls.failed = map[int]string{}
	}
	if ls.failed[port] != err.Error() {
		ls.failed[port] = err.Error()
		ls.c.cfg.Log.Warn("cannot serve a Gateway listener port", "port", portNumber(port), "udp", port != portNumber(port), "err", err)
	}
}

// listenUDP opens a UDP listener's port: on IPv4, and when the proxy
// listens on every address, on IPv6 too (a socket each, so that each reads
// its datagrams' destination addresses). A host without IPv6 serves IPv4.
func (ls *listeners) listenUDP(port int) ([]*udpProxy, error) {
	addr := ls.addrFor(port)
	u4, err := ls.listenUDPOn("udp4", addr, port)
	if err != nil {
		return nil, err
	}
	proxies := []*udpProxy{u4}
	if host, _, _ := net.SplitHostPort(addr); host == "" || net.ParseIP(host).IsUnspecified() {
		u6, err := ls.listenUDPOn("udp6", net.JoinHostPort("::", strconv.Itoa(port)), port)
		if err != nil {
			ls.c.cfg.Log.Debug("UDP listener port without IPv6", "port", port, "err", err)
		} else {
			proxies = append(proxies, u6)
		}
	}
	return proxies, nil
}

func (ls *listeners) listenUDPOn(network, addr string, port int) (*udpProxy, error) {
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	u, err := newUDPProxy(pc, ls.c.proxy, port)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return u, nil
}

// err is the error of an Ingress port that could not be bound.
func (ls *listeners) err() error { return ls.first }

// publish records the listen addresses in the Controller.
func (ls *listeners) publish() {
	c := ls.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.httpAddr, c.httpsAddr = nil, nil
	c.ports = map[int]net.Addr{}
	for port, s := range ls.open {
		c.ports[port] = s.addr
	}
	if s := ls.open[HTTPPort]; s != nil {
		c.httpAddr = s.addr
	}
	if s := ls.open[HTTPSPort]; s != nil {
		c.httpsAddr = s.addr
	}
}

// stop shuts a server down, giving requests in flight a grace period.
func (ls *listeners) stop(ctx context.Context, srv *http.Server) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
}

// shutdown stops every server and waits for their goroutines.
func (ls *listeners) shutdown(ctx context.Context) {
	for port, s := range ls.open {
		delete(ls.open, port)
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			s.stop(ctx)
		}()
	}
	ls.wg.Wait()
	ls.c.proxy.CloseIdleConnections()
	ls.publish()
}

// PortAddr returns the listen address of the listener on port (a TCP port
// number, or udpPortKey of a UDP one) while Run serves it, nil otherwise.
func (c *Controller) PortAddr(port int) net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ports[port]
}

// GatewayPool is the configured gateway address pool.
func (c *Controller) GatewayPool() netip.Prefix { return c.cfg.GatewayPool }
