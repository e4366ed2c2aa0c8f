package agent

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/internal/fleet/tunnel"
)

// serveTunnel keeps a tunnel open to the upstream, through which the
// upstream's proxy path reaches this cluster's API server, until ctx ends.
func (a *agent) serveTunnel(ctx context.Context) {
	local, err := a.localProxy()
	if err != nil {
		a.log.Error("fleet agent: no tunnel", "err", err)
		return
	}
	tlsConfig, err := rest.TLSConfigFor(a.up)
	if err != nil {
		a.log.Error("fleet agent: no tunnel", "err", err)
		return
	}
	delay := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := tunnel.Dial(ctx, a.up.Host, tlsConfig, a.up.BearerToken, local)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			delay = time.Second
		}
		a.log.Warn("fleet agent: the tunnel to the upstream closed; opening it again", "err", err, "after", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// localProxy forwards what comes through the tunnel to this cluster's API
// server with the agent's credentials; the upstream's impersonation
// headers name the user the request is made as.
func (a *agent) localProxy() (http.Handler, error) {
	target, err := url.Parse(a.cfg.Local.Host)
	if err != nil {
		return nil, err
	}
	rt, err := rest.TransportFor(a.cfg.Local)
	if err != nil {
		return nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Header.Del("Authorization")
		},
		Transport:     rt,
		FlushInterval: -1,
	}
	tlsConfig, err := rest.TLSConfigFor(a.cfg.Local)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig = tlsConfig.Clone()
	tlsConfig.NextProtos = []string{"http/1.1"} // upgrades need HTTP/1.1
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = target.Hostname()
	}
	host := target.Host
	if target.Port() == "" {
		host = net.JoinHostPort(target.Hostname(), "443")
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tlsConfig}
		return d.DialContext(ctx, "tcp", host)
	}
	authorize := func(r *http.Request) {
		r.Header.Del("Authorization")
		if t := a.cfg.Local.BearerToken; t != "" {
			r.Header.Set("Authorization", "Bearer "+t)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(tunnel.HeaderUpgrade) != "" {
			tunnel.ServeUpgrade(w, r, dial, authorize)
			return
		}
		rp.ServeHTTP(w, r)
	}), nil
}
