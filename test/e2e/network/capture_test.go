package network

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// linkCapture records the frames crossing the nodes' network (every port
// of the bridge in the netns skiff-lan) while it runs: what a wire tap
// between the nodes sees.
type linkCapture struct {
	fd   int
	mu   sync.Mutex // guards data
	data []byte
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// startCapture opens a packet socket on every interface of skiff-lan (a
// socket bound to the bridge itself would see only frames for the bridge,
// not those it forwards between nodes).
func startCapture(t *testing.T) *linkCapture {
	t.Helper()
	fd := -1
	// A socket belongs to the network namespace it is made in.
	err := e2eutil.InNetns("/var/run/netns/skiff-lan", func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("capture in skiff-lan: %v", err)
	}
	c := &linkCapture{fd: fd, done: make(chan struct{})}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			c.mu.Lock()
			if len(c.data) < 64<<20 {
				c.data = append(c.data, buf[:n]...)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop ends the capture (once) and returns what it saw.
func (c *linkCapture) stop() []byte {
	c.mu.Lock()
	if c.fd >= 0 {
		unix.Shutdown(c.fd, unix.SHUT_RDWR)
		unix.Close(c.fd)
		c.fd = -1
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.data)
}
