package e2eutil

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a thread in the network namespace at path
// (/var/run/netns/NAME, /proc/PID/ns/net), then returns the thread to its
// own namespace: the sockets fn makes stay in the one they were made in.
func InNetns(path string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the network namespace %s: %w", path, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // the thread must not stay in another namespace
		}
	}()
	return fn()
}

// LAN is a private network segment on this machine: a bridge in a network
// namespace of its own (NAME-lan), a leg in the host's namespace
// (NAME-h0, at PREFIX.1/24), and hosts, each a network namespace
// (NAME-I, eth0 at PREFIX.(10+I)/24, default route via PREFIX.1). Traffic
// between the hosts crosses the bridge as it would cross a switch; the
// host's own rules never see it.
type LAN struct {
	t      testing.TB
	name   string
	prefix string
	hosts  int
}

// NewLAN creates the segment (removing what a killed run left of one of
// that name); it is removed when the test ends. name must be at most 10
// characters; prefix is the first three octets of a /24.
func NewLAN(t testing.TB, name, prefix string) *LAN {
	t.Helper()
	l := &LAN{t: t, name: name, prefix: prefix}
	l.remove()
	l.ip("netns", "add", name+"-lan")
	l.ip("-n", name+"-lan", "link", "add", "br0", "type", "bridge")
	l.ip("-n", name+"-lan", "link", "set", "br0", "up")
	l.ip("link", "add", name+"-h0", "type", "veth", "peer", "name", "h0", "netns", name+"-lan")
	l.ip("-n", name+"-lan", "link", "set", "h0", "master", "br0", "up")
	l.ip("addr", "add", prefix+".1/24", "dev", name+"-h0")
	l.ip("link", "set", name+"-h0", "up")
	t.Cleanup(l.remove)
	return l
}

// Gateway is the host namespace's address on the segment.
func (l *LAN) Gateway() string { return l.prefix + ".1" }

// AddHost adds the next host and returns its namespace's name and address.
func (l *LAN) AddHost() (netns, addr string) {
	l.t.Helper()
	l.hosts++
	i := l.hosts
	netns, addr = fmt.Sprintf("%s-%d", l.name, i), fmt.Sprintf("%s.%d", l.prefix, 10+i)
	peer := fmt.Sprintf("h%d", i)
	l.ip("netns", "add", netns)
	l.ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", l.name+"-lan")
	l.ip("-n", l.name+"-lan", "link", "set", peer, "master", "br0", "up")
	l.ip("-n", netns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", netns, "link", "set", "eth0", "up")
	l.ip("-n", netns, "link", "set", "lo", "up")
	l.ip("-n", netns, "route", "add", "default", "via", l.Gateway())
	return netns, addr
}

func (l *LAN) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the segment's namespaces and the host's leg, whatever
// is left of them.
func (l *LAN) remove() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], l.name+"-") {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	_ = exec.Command("ip", "link", "del", l.name+"-h0").Run()
}
