package dns

import (
	"net"

	"github.com/miekg/dns"
)

// systemdResolvConf lists the real upstreams on hosts where /etc/resolv.conf
// names only systemd-resolved's 127.0.0.53 stub (the kubelet reads it too).
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// upstreamsFrom returns the name servers of the resolv.conf files, as
// host:port, the first file that names any non-loopback server winning.
// Loopback servers (127.0.0.0/8, ::1: local stubs) are used only when no file
// names anything else; they are reachable from skiff, which runs on the
// host, but a stub on the host is often what forwards back to cluster DNS.
func upstreamsFrom(files ...string) []string {
	var loopback []string
	for _, f := range files {
		cc, err := dns.ClientConfigFromFile(f)
		if err != nil {
			continue
		}
		var out []string
		for _, s := range cc.Servers {
			addr := net.JoinHostPort(s, cc.Port)
			if ip := net.ParseIP(s); ip != nil && ip.IsLoopback() {
				loopback = append(loopback, addr)
				continue
			}
			out = append(out, addr)
		}
		if len(out) > 0 {
			return out
		}
	}
	return dedupeStrings(loopback)
}

func dedupeStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
