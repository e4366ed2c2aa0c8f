package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestDNSServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- dnsServer(ctx, []string{"--port", "0"}, w) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	_, port, err := net.SplitHostPort(strings.TrimSpace(strings.TrimPrefix(line, "answering DNS on udp ")))
	if err != nil {
		t.Fatalf("startup line %q: %v", line, err)
	}
	q := new(dns.Msg)
	q.SetQuestion("foo.bar.com.", dns.TypeA)
	resp, err := dns.Exchange(q, "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Errorf("answer = %v, want foo.bar.com. A 127.0.0.1 (the asker)", resp.Answer)
	}
}
