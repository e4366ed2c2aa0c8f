package agent

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

// TestAcceptLocally: with the pool's local route a socket binds to an
// address no interface has; without it, it cannot.
func TestAcceptLocally(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("routes need root")
	}
	pool := netip.MustParsePrefix("198.18.255.252/30") // benchmarking range, unused here
	addr := "198.18.255.253:0"
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("%s is already local on this machine; pick another test range", addr)
	}
	if err := acceptLocally(pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = forgetLocally(pool) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on a pool address with the local route: %v", err)
	}
	ln.Close()
	if err := acceptLocally(pool); err != nil {
		t.Errorf("a second acceptLocally: %v (it must be idempotent)", err)
	}
	if err := forgetLocally(pool); err != nil {
		t.Fatal(err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Error("the pool address is still local after forgetLocally")
	}
}
