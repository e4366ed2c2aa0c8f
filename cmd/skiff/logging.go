package main

import (
	"bytes"
	"context"
	goflag "flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/skiffdev/skiff/internal/progress"
)

// logLevel is skiff's own log level (--log-level); the upstream components
// log through klog, whose verbosity is -v.
type logLevel struct{ slog.Level }

func (l *logLevel) String() string { return strings.ToLower(l.Level.String()) }
func (l *logLevel) Type() string   { return "level" }
func (l *logLevel) Set(s string) error {
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("want debug, info, warn or error")
	}
	return nil
}

// logging is the logging of the long-running commands (server, agent, sim).
var logging logLevel

// status is the line below the log on a terminal saying what a start waits
// for; every log line goes through it (status.Writer), so that it stays
// below them.
var status = progress.NewStatus(os.Stderr)

func registerLogFlags(root *cobra.Command) {
	root.PersistentFlags().Var(&logging, "log-level", "skiff's own log level: debug, info, warn or error (the upstream components' detail is behind -v)")
}

// setUpLogging is called before every command runs. By default the
// upstream components' informational lines (hundreds a minute) are not
// shown, only their warnings and errors: a person reads one line per
// component as it becomes ready. With -v N, or --log-level debug, klog's
// output at that verbosity is shown as upstream prints it.
func setUpLogging(cmd *cobra.Command) {
	verbose := logging.Level <= slog.LevelDebug
	if v := cmd.Flags().Lookup("v"); v != nil && v.Changed {
		verbose = true
	}
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	// klog writes each line once to its INFO output (the outputs of the
	// higher severities get copies, discarded here); only fatal lines go
	// to stderr directly as well.
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := klogFlags.Set(k, v); err != nil {
			panic(err) // klog's own flags, set to valid values
		}
	}
	klog.SetOutputBySeverity("INFO", &klogFilter{w: status.Writer(), verbose: verbose})
	for _, s := range []string{"WARNING", "ERROR", "FATAL"} {
		klog.SetOutputBySeverity(s, io.Discard)
	}
	// The API server's warnings to a long-running command's in-process
	// clients are about what those clients themselves use (the API
	// server's endpoint reconciler reads v1 Endpoints, deprecated, every
	// 10 s): nothing its reader can act on, and upstream's kube-apiserver
	// and kube-controller-manager silence them. So do skiff's, unless
	// verbose; a client command (kubectl has its own) prints each once.
	if longRunning[cmd.Name()] && !verbose {
		rest.SetDefaultWarningHandler(rest.NoWarnings{})
	} else {
		rest.SetDefaultWarningHandler(rest.NewWarningWriter(status.Writer(), rest.WarningWriterOptions{Deduplicate: true}))
	}
}

// longRunning are the commands that run components in-process.
var longRunning = map[string]bool{"server": true, "agent": true, "sim": true}

// newLogger is skiff's own logger for one command, at --log-level.
func newLogger(component string) *slog.Logger {
	return slog.New(slog.NewTextHandler(status.Writer(), &slog.HandlerOptions{Level: logging.Level})).With("component", component)
}

// klogFilter passes the upstream components' klog lines to w: all of them
// when verbose, else their warnings and errors, less those that every
// healthy start prints and that need nothing from the reader, and none once
// the command was told to stop.
type klogFilter struct {
	w       io.Writer
	verbose bool
}

// signalled is the context untilSignal made for the running long-running
// command (nil for other commands).
var signalled atomic.Pointer[context.Context]

// stopping reports whether a long-running command was told to stop
// (SIGTERM, Ctrl-C): its context ended with the signal as the cause, not by
// the command's own stop at its end. The upstream components' errors from
// then on are the stop's consequences, not faults: the controller manager
// reports its leader lease released as "leaderelection lost/stopped", the
// API server the watches still open when its grace
// (component.ShutdownTimeout) ends as "Failed to shutdown server", the
// kubelet, which outlives its API server, its requests refused. skiff's own
// lines say what stopped.
func stopping() bool {
	p := signalled.Load()
	if p == nil {
		return false
	}
	// stop cancels with no cause (context.Canceled itself); a signal's cause
	// is its own error, which errors.Is also counts as context.Canceled.
	ctx := *p
	return ctx.Err() != nil && context.Cause(ctx) != context.Canceled
}

// untilSignal is a long-running command's context (signal.NotifyContext's):
// done on SIGTERM or Ctrl-C, from when upstream's lines are shown only if
// verbose (a command ending on its own, say on a configuration error,
// shows them to the end).
func untilSignal() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	signalled.Store(&ctx)
	return ctx, stop
}

// commandFailed is in the line the command's final error is printed with
// (component-base's cli.Run): shown whatever happened before.
const commandFailed = `"command failed"`

// startupNoise are messages of healthy starts and stops: API versions without
// resources, the node not registered in its first second, nftables sets
// not there before kube-proxy's first sync, and facts of this kind of host
// that the components work around themselves.
var startupNoise = []string{
	"because it has no resources",
	"The manifest file is empty",
	"component has alpha features enabled in emulated version",
	"Flexvolume plugin directory",
	"RuntimeConfig from runtime service failed",
	"Failed to set rlimit on max file handles",
	"Failed to ensure process in container with oom score",
	"because node is not registered yet",
	"Error getting the current node from lister",
	"Failed to get node when trying to set owner ref to the node lease",
	"eviction manager: failed to check if we have separate container filesystem",
	"Eviction manager: failed to get summary stats",
	"checkpoint is not found",
	"PLEG is not healthy: pleg has yet to be successful",
	"Failed to list existing sets",
	"Resetting endpoints for master service",
	// controllers of a fresh cluster's first second, before kube-system exists
	`namespaces \"kube-system\" not found`,
	// and of a clean stop
	"Terminating all watchers from cacher",
	"Unable to record event (will not retry!)\" err=\"broadcaster already stopped",
	// the kubelet's calls to containerd, cancelled as the agent stops
	"code = Canceled desc = context canceled",
	// the aggregator and the controllers before metrics-server serves (at
	// each start): skiff reports metrics-server itself, as a component
	// that fails, and when metrics.k8s.io is not Available 30 s after
	// the start
	`"v1beta1.metrics.k8s.io`,
	"v1beta1.metrics.k8s.io failed with",
	"error resolving kube-system/metrics-server",
	"metrics.k8s.io/v1beta1: stale GroupVersion discovery",
	// the aggregator's proxy, on its own availability checks
	"no RequestInfo found in the context",
}

func (f *klogFilter) Write(line []byte) (int, error) {
	if !f.verbose {
		if len(line) == 0 || line[0] == 'I' || stopping() && !bytes.Contains(line, []byte(commandFailed)) {
			return len(line), nil
		}
		for _, n := range startupNoise {
			if bytes.Contains(line, []byte(n)) {
				return len(line), nil
			}
		}
	}
	return f.w.Write(line)
}
