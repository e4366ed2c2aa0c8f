package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// pause blocks until ctx ends (SIGTERM or SIGINT). With --ignore-sigterm it
// ignores SIGTERM and only SIGINT or SIGKILL end it, which lets tests see the
// kubelet wait out terminationGracePeriodSeconds.
func pause(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlags("pause")
	ignore := fs.Bool("ignore-sigterm", false, "ignore SIGTERM; only SIGINT or SIGKILL end the process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ignore {
		signal.Ignore(syscall.SIGTERM)
		// signal.Ignore undoes the NotifyContext registration for SIGTERM,
		// so ctx now ends only on SIGINT.
	}
	<-ctx.Done()
	return nil
}

// exitMode exits with --code after --after has passed. A signal during the
// wait exits at once, still with --code.
func exitMode(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlags("exit")
	code := fs.Int("code", 0, "exit status")
	after := fs.Duration("after", 0, "wait this long before exiting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *code < 0 || *code > 255 {
		return fmt.Errorf("--code %d out of range 0..255", *code)
	}
	if *after > 0 {
		t := time.NewTimer(*after)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if *code == 0 {
		return nil
	}
	return exitError{*code}
}

// sleepMode sleeps for its one argument, a Go duration ("30s") or a number
// of seconds ("30"), and exits 0; a signal ends the sleep early, also with 0.
func sleepMode(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlags("sleep")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one DURATION argument, got %d", fs.NArg())
	}
	d, err := parseDuration(fs.Arg(0))
	if err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// parseDuration accepts a Go duration or a plain number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return d, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 || math.IsInf(secs, 0) || math.IsNaN(secs) {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s or 30)", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
