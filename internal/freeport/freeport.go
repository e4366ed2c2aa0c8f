// Package freeport picks TCP ports for servers that will bind them a moment
// later: tests and benchmarks that start `skiff server`, a kubelet or a DNS
// server on "a free port".
//
// Asking the kernel for port 0 returns a port from its ephemeral range, the
// same range it draws source ports of outgoing connections from; between the
// pick and the server's bind, any connection the process (or another) opens
// may be given that port, and the bind fails ("address already in use").
// Pick draws from below the ephemeral range instead, where only listeners
// live.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the first port Pick considers.
const low = 20000

// Pick returns a TCP port that is free on every address now and lies below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range).
func Pick() (int, error) {
	high := ephemeralStart()
	if high <= low+1000 {
		return 0, fmt.Errorf("freeport: the ephemeral range starts at %d, leaving no room above %d", high, low)
	}
	for range 100 {
		port := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("freeport: no free port found in 100 tries")
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux
// default 32768).
func ephemeralStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
