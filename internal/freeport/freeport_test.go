package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Pick's ports lie below the ephemeral range, and can be bound.
func TestPick(t *testing.T) {
	start := ephemeralStart()
	for range 20 {
		port, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if port < low || port >= start {
			t.Fatalf("port %d outside [%d, %d)", port, low, start)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("bind the picked port %d: %v", port, err)
		}
		l.Close()
	}
}
