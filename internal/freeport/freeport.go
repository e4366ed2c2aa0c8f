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
//
// A port that is free now is not reserved: two picks a moment apart, in one
// process or in two test packages running side by side, could return the
// same port before either server binds it. So Pick never returns a port
// twice in one process, and claims each port it returns with a file in
// os.TempDir()/skiff-freeport holding its process ID; other processes skip a
// port whose claim belongs to a process still alive.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// low is the first port Pick considers.
const low = 20000

var (
	mu     sync.Mutex
	picked = map[int]bool{}
	// claimsDir holds one file per claimed port (a variable for tests).
	claimsDir = filepath.Join(os.TempDir(), "skiff-freeport")
)

// Pick returns a TCP port that is free on every address now, lies below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range), and was not
// returned before by this process or claimed by another process still alive.
func Pick() (int, error) {
	high := ephemeralStart()
	if high <= low+1000 {
		return 0, fmt.Errorf("freeport: the ephemeral range starts at %d, leaving no room above %d", high, low)
	}
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		port := low + rand.IntN(high-low)
		if picked[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		if !claim(port) {
			continue
		}
		picked[port] = true
		return port, nil
	}
	return 0, errors.New("freeport: no free port found in 200 tries")
}

// claim records port as this process's, unless a live process claimed it.
// Without a usable claims directory it claims nothing and says yes: the
// in-process check still holds.
func claim(port int) bool {
	if err := os.MkdirAll(claimsDir, 0o777); err != nil {
		return true
	}
	path := filepath.Join(claimsDir, strconv.Itoa(port))
	self := []byte(strconv.Itoa(os.Getpid()))
	for range 2 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			_, werr := f.Write(self)
			cerr := f.Close()
			return werr == nil && cerr == nil
		}
		if !errors.Is(err, os.ErrExist) {
			return true
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || alive(pid) {
			// Alive, or still being written by its process this moment.
			return false
		}
		// The claim's process is gone: take the port over.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false
		}
	}
	return false
}

// alive reports whether a process with this ID exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
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
