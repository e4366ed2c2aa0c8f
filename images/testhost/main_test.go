package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunExitCodes(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		args []string
		want int
	}{
		{"no mode", context.Background(), nil, 2},
		{"unknown mode", context.Background(), []string{"bogus"}, 2},
		{"help", context.Background(), []string{"help"}, 0},
		{"exit 3", context.Background(), []string{"exit", "--code", "3"}, 3},
		{"exit 0", context.Background(), []string{"exit"}, 0},
		{"exit after", context.Background(), []string{"exit", "--code=4", "--after=1ms"}, 4},
		{"exit after, signalled", canceled, []string{"exit", "--code=5", "--after=1h"}, 5},
		{"exit bad code", context.Background(), []string{"exit", "--code", "300"}, 1},
		{"exit bad flag", context.Background(), []string{"exit", "--nope"}, 1},
		{"exit -h", context.Background(), []string{"exit", "-h"}, 0},
		{"sleep", context.Background(), []string{"sleep", "1ms"}, 0},
		{"sleep seconds", context.Background(), []string{"sleep", "0.001"}, 0},
		{"sleep signalled", canceled, []string{"sleep", "1h"}, 0},
		{"sleep no arg", context.Background(), []string{"sleep"}, 1},
		{"sleep bad arg", context.Background(), []string{"sleep", "soon"}, 1},
		{"pause signalled", canceled, []string{"pause"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(tc.ctx, tc.args, &out, &errb); got != tc.want {
				t.Errorf("run(%q) = %d, want %d; stderr: %s", tc.args, got, tc.want, errb.String())
			}
		})
	}
}

func TestUsageListsModes(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	for name := range modes {
		if !strings.Contains(b.String(), name) {
			t.Errorf("usage does not mention %s", name)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"30", 30 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"-1s", 0, false},
		{"-1", 0, false},
		{"inf", 0, false},
		{"soon", 0, false},
	} {
		got, err := parseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v ok=%t", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
