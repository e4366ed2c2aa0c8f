package freeport

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// Pick never returns a port twice in one process, and writes a claim for
// each port it returns.
func TestPickUnique(t *testing.T) {
	claimsDir = t.TempDir()
	seen := map[int]bool{}
	for range 300 {
		port, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d returned twice", port)
		}
		seen[port] = true
		data, err := os.ReadFile(filepath.Join(claimsDir, strconv.Itoa(port)))
		if err != nil || string(data) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("claim of %d: %q, %v", port, data, err)
		}
	}
}

// A port claimed by a live process is skipped; one claimed by a process
// that is gone, or by this process's earlier run, is taken over.
func TestClaim(t *testing.T) {
	claimsDir = t.TempDir()
	write := func(port int, content string) {
		if err := os.WriteFile(filepath.Join(claimsDir, strconv.Itoa(port)), []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	write(20001, "1") // init: alive
	if claim(20001) {
		t.Fatal("claimed a port a live process holds")
	}
	write(20002, "") // being written this moment
	if claim(20002) {
		t.Fatal("claimed a port whose claim is being written")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	write(20003, strconv.Itoa(dead.Process.Pid))
	if !claim(20003) {
		t.Fatal("did not take over the claim of a process that is gone")
	}
	if !claim(20004) {
		t.Fatal("did not claim a free port")
	}
	if claim(20004) {
		t.Fatal("claimed a port twice")
	}
}
