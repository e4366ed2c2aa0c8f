// Package supervise keeps an in-process component running: when it returns
// for any reason but its context ending or a configuration error, it is
// started again after an exponential back-off, as the kubelet restarts a
// crashed static pod.
package supervise

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/skiffdev/skiff/internal/component"
)

// Backoff bounds the delay between restarts.
type Backoff struct {
	Initial, Max time.Duration
	// Reset: a run that lasted this long starts the back-off afresh.
	Reset time.Duration
}

// DefaultBackoff is 0.5 s doubling to 30 s, reset after a minute up.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Reset: time.Minute}

// Run calls run until ctx ends. It returns nil when ctx ends, and the error
// when run reports a configuration error.
func Run(ctx context.Context, log *slog.Logger, name string, b Backoff, run func(context.Context) error) error {
	delay := b.Initial
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			log.Info("component stopped", "component", name)
			return nil
		}
		if errors.Is(err, component.ErrConfig) {
			return err
		}
		if time.Since(started) >= b.Reset {
			delay = b.Initial
		}
		log.Warn("component stopped; restarting", "component", name, "err", err, "after", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, b.Max)
	}
}
