package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/skiffdev/skiff/internal/component"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRestartsUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	err := Run(ctx, quiet, "c", Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Reset: time.Hour}, func(context.Context) error {
		runs++
		if runs == 5 {
			cancel()
		}
		return errors.New("crashed")
	})
	if err != nil || runs != 5 {
		t.Fatalf("Run = %v after %d runs; want nil after 5", err, runs)
	}
}

func TestConfigurationErrorStops(t *testing.T) {
	runs := 0
	err := Run(context.Background(), quiet, "c", DefaultBackoff, func(context.Context) error {
		runs++
		return fmt.Errorf("kube-x: %w: bad flag", component.ErrConfig)
	})
	if !errors.Is(err, component.ErrConfig) || runs != 1 {
		t.Fatalf("Run = %v after %d runs; want the configuration error after 1", err, runs)
	}
}

func TestBackoffDoubles(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var starts []time.Time
	_ = Run(ctx, quiet, "c", Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Hour}, func(context.Context) error {
		starts = append(starts, time.Now())
		if len(starts) == 5 {
			cancel()
		}
		return errors.New("crashed")
	})
	want := []time.Duration{10, 20, 40, 40}
	for i, w := range want {
		gap := starts[i+1].Sub(starts[i])
		if gap < w*time.Millisecond {
			t.Errorf("gap %d = %s, want at least %dms", i, gap, w)
		}
	}
}
