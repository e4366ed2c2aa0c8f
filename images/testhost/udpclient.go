package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// udpClient sends --message to --to every --interval from one socket bound
// to --source-port, --count times, and prints each answer on a line of its
// own. The socket is not connected, so ICMP errors (a port or host
// unreachable) do not end it: the flow keeps its 5-tuple for as long as it
// runs, which is what tests of conntrack need.
func udpClient(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("udp-client")
	to := fs.String("to", "", "HOST:PORT to send to (required)")
	sourcePort := fs.Int("source-port", 0, "local UDP port (0: any)")
	msg := fs.String("message", "hostname", "datagram to send")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between datagrams")
	count := fs.Int("count", 100, "datagrams to send (1 or more)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || *count < 1 || *interval <= 0 {
		return errors.New("--to is required, --count must be 1 or more and --interval positive")
	}
	dst, err := net.ResolveUDPAddr("udp", *to)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort("", strconv.Itoa(*sourcePort)))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	read := make(chan struct{})
	defer func() { pc.Close(); <-read }() // every answer printed before returning
	go func() {
		defer close(read)
		buf := make([]byte, 64<<10)
		for {
			n, _, err := pc.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				fmt.Fprintln(stdout, string(buf[:n]))
			}
		}
	}()
	t := time.NewTicker(*interval)
	defer t.Stop()
	for i := 0; i < *count; i++ {
		if _, err := pc.WriteTo([]byte(*msg), dst); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "udp-client:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return nil
}
