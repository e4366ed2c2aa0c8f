// Command testhost is skiff's test workload, in the spirit of Kubernetes'
// agnhost: one static binary whose first argument picks a mode.
//
//	testhost serve-hostname [--port 8080] [--http] [--tcp] [--udp]
//	testhost netexec [--http-port 8080] [--udp-port 8081] [--grpc-port 0]
//	testhost pause [--ignore-sigterm]
//	testhost exit --code N [--after DURATION]
//	testhost sleep DURATION
//	testhost udp-client --to HOST:PORT [--source-port N] [--message hostname] [--interval 200ms] [--count 100]
//	testhost dns [--port 53]
//	testhost http-load (--url URL | --grpc-health HOST:PORT) [--requests 1000] [--concurrency 1] [--keepalive=true] [--h2c] [--rate 0] [--warmup 0] [--timeout 60s]
//
// It ships as /testhost in the localhost/skiff/testhost image next to
// busybox (see internal/images), so netexec's /shell endpoint has a shell.
// Every long-running mode exits 0 on SIGTERM or SIGINT, because a container's
// PID 1 without a handler would ignore SIGTERM and make every pod deletion
// wait out its grace period.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// mode is one subcommand. run returns when the mode is done or ctx ends;
// an exitError asks for a specific exit status.
type mode struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

// modes lists every subcommand.
var modes = map[string]mode{
	"serve-hostname": {"answer the pod's hostname over HTTP, TCP or UDP", serveHostname},
	"netexec":        {"HTTP test server: /hostname /echo /shell /exit /healthz /readyz /read /write, gRPC health", netexec},
	"pause":          {"block until SIGTERM or SIGINT, then exit 0", pause},
	"exit":           {"exit with --code N, optionally --after DURATION", exitMode},
	"sleep":          {"sleep DURATION, then exit 0", sleepMode},
	"udp-client":     {"send a datagram every --interval from one source port, print the answers", udpClient},
	"dns":            {"answer DNS over UDP: A questions with the asker's address", dnsServer},
	"http-load":      {"send N GETs (HTTP/1.1, h2c) or gRPC health checks, print latency percentiles as JSON", httpLoad},
}

// exitError ends the process with the given status.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a mode and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	m, ok := modes[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "testhost: unknown mode %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := m.run(ctx, args[1:], stdout)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "testhost %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: testhost MODE [flags]")
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, modes[n].summary)
	}
}

// newFlags returns a flag set for a mode that reports errors instead of
// exiting, so run decides the exit status.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("testhost "+name, flag.ContinueOnError)
	return fs
}
