package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Component is one named part of a process.
type Component struct {
	// Name appears in every log line and error about the component.
	Name string
	// Run does the component's work until ctx ends. Returning nil before
	// that means the component has finished (a one-shot task): the group
	// goes on without it. Returning an error stops the group, unless
	// Restart is set.
	Run func(ctx context.Context) error
	// Restart, when set, runs Run again after it fails, with this back-off,
	// as Run (the package function) does; a configuration error
	// (component.ErrConfig) still stops the group.
	Restart *Backoff
	// Ready, when set, is waited for before the next component starts: it
	// returns nil once the component serves, or an error if it never will.
	Ready func(ctx context.Context) error
	// Step marks a start-up step: the next component starts only after Run
	// has returned nil. Steps are not restarted.
	Step bool
	// StopTimeout bounds the wait for Run to return once its context has
	// ended (default 10 s); a component still running then is reported and
	// left behind, so that one stuck component cannot hold the process.
	StopTimeout time.Duration
}

// Closed is a Ready check for a component that closes c once it serves.
func Closed(c <-chan struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-c:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Group runs components: started in order (each waiting for the previous
// one's Ready or Step), stopped in reverse order when ctx ends or one of them
// fails, each waited for before the one started before it is stopped.
type Group struct {
	Log        *slog.Logger
	Components []Component
	// Progress, when set, is told as the start goes: before each
	// component is waited for (done of total started, waiting its name),
	// and once all have started (done == total, waiting "").
	Progress func(done, total int, waiting string)
}

// running is a started component.
type running struct {
	c    Component
	stop context.CancelFunc
	// done is closed when Run has returned; err is set before.
	done chan struct{}
	err  error
}

// Run starts the components and returns when they have all stopped: nil
// when ctx ended, else the first component's error, named after it.
func (g Group) Run(ctx context.Context) error {
	log := g.Log
	if log == nil {
		log = slog.Default()
	}
	// failed carries the index of a component that stopped with an error.
	failed := make(chan int, len(g.Components))
	var started []*running
	defer func() { stopAll(log, started) }()

	for i, c := range g.Components {
		if g.Progress != nil {
			g.Progress(i, len(g.Components), c.Name)
		}
		r := start(ctx, log, c, len(started), failed)
		started = append(started, r)
		if err := g.waitStarted(ctx, log, r, started, failed); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	if g.Progress != nil {
		g.Progress(len(g.Components), len(g.Components), "")
	}
	select {
	case <-ctx.Done():
		return nil
	case i := <-failed:
		return started[i].failure()
	}
}

// waitStarted waits for r's Ready or Step, or for a failure of any started
// component.
func (g Group) waitStarted(ctx context.Context, log *slog.Logger, r *running, started []*running, failed <-chan int) error {
	if !r.c.Step && r.c.Ready == nil {
		log.Info("component started", "component", r.c.Name)
		return nil
	}
	readyErr := make(chan error, 1)
	readyCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.c.Step {
		go func() {
			select {
			case <-r.done:
				readyErr <- r.err
			case <-readyCtx.Done():
				readyErr <- nil
			}
		}()
	} else {
		go func() { readyErr <- r.c.Ready(readyCtx) }()
	}
	select {
	case err := <-readyErr:
		if err != nil && ctx.Err() == nil {
			return named(r.c.Name, err)
		}
		if ctx.Err() == nil && !r.c.Step {
			log.Info("component ready", "component", r.c.Name)
		}
		return nil
	case <-ctx.Done():
		<-readyErr // the ready check ends with readyCtx
		return nil
	case i := <-failed:
		return started[i].failure()
	}
}

// start runs c in a goroutine of its own, under a context of its own that
// only stopAll cancels (it keeps ctx's values, not its cancellation): the
// end of ctx stops the components one by one, last first.
func start(ctx context.Context, log *slog.Logger, c Component, index int, failed chan<- int) *running {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &running{c: c, stop: cancel, done: make(chan struct{})}
	run := c.Run
	if c.Restart != nil {
		b := *c.Restart
		run = func(ctx context.Context) error { return Run(ctx, log, c.Name, b, c.Run) }
	}
	go func() {
		defer close(r.done)
		r.err = run(cctx)
		if r.err != nil && cctx.Err() == nil {
			failed <- index
		}
	}()
	return r
}

func (r *running) failure() error {
	<-r.done
	err := r.err
	if err == nil {
		err = errors.New("stopped")
	}
	return named(r.c.Name, err)
}

// named prefixes err with the component's name, unless it says it already
// (upstream components' errors name themselves).
func named(name string, err error) error {
	if strings.HasPrefix(err.Error(), name+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// stopAll stops the started components, last first, each waited for.
func stopAll(log *slog.Logger, started []*running) {
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.stop()
		timeout := r.c.StopTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		t := time.NewTimer(timeout)
		select {
		case <-r.done:
		case <-t.C:
			log.Warn("component did not stop in time; leaving it behind", "component", r.c.Name, "waited", timeout)
		}
		t.Stop()
	}
}
