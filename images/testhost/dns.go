package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/miekg/dns"
)

// dnsServer answers DNS over UDP on --port: every A question with the
// address the query came from (as CoreDNS's whoami plugin does), every
// other question with an empty answer. It stands in for the CoreDNS
// backends of the Gateway API conformance suite's UDPRoute tests.
func dnsServer(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("dns")
	port := fs.Int("port", 53, "UDP port to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort("", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, question := range q.Question {
			if question.Qtype != dns.TypeA {
				continue
			}
			if ua, ok := w.RemoteAddr().(*net.UDPAddr); ok && ua.IP.To4() != nil {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   ua.IP.To4(),
				})
			}
		}
		m.Extra = append(m.Extra, &dns.TXT{
			Hdr: dns.RR_Header{Name: "hostname.", Rrtype: dns.TypeTXT, Class: dns.ClassINET},
			Txt: []string{hostname},
		})
		w.WriteMsg(m)
	})}
	go func() {
		<-ctx.Done()
		srv.Shutdown()
	}()
	io.WriteString(stdout, "answering DNS on udp "+pc.LocalAddr().String()+"\n")
	if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
