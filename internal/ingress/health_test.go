package ingress

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestHealth(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	h := NewHealth(clk, 0)
	const a = "10.0.0.1:80"
	fail := func(n int) (ejected bool) {
		for range n {
			ejected = h.Report(a, false)
		}
		return ejected
	}

	if fail(4) || !h.Healthy(a) {
		t.Fatal("ejected before the fifth failure")
	}
	h.Report(a, true)
	if fail(4) || !h.Healthy(a) {
		t.Fatal("a success did not reset the failure count")
	}
	if !fail(1) || h.Healthy(a) {
		t.Fatal("not ejected after five consecutive failures")
	}
	if fail(10) {
		t.Error("failures while ejected ejected again")
	}

	// Back-off grows by 30 s per ejection in a row.
	for n, want := range []time.Duration{30 * time.Second, 60 * time.Second, 90 * time.Second} {
		if n > 0 && !fail(5) {
			t.Fatalf("ejection %d did not happen", n+1)
		}
		clk.SetTime(clk.Now().Add(want - time.Second))
		if h.Healthy(a) {
			t.Fatalf("ejection %d ended before %v", n+1, want)
		}
		clk.SetTime(clk.Now().Add(time.Second))
		if !h.Healthy(a) {
			t.Fatalf("ejection %d did not end after %v", n+1, want)
		}
	}

	// The back-off is capped at 5 minutes.
	for range 20 {
		fail(5)
		clk.SetTime(clk.Now().Add(5 * time.Minute))
	}
	fail(5)
	clk.SetTime(clk.Now().Add(5 * time.Minute))
	if !h.Healthy(a) {
		t.Error("ejection lasted beyond 5 minutes")
	}

	// A success after return resets the count: back to 30 s.
	h.Report(a, true)
	fail(5)
	clk.SetTime(clk.Now().Add(30 * time.Second))
	if !h.Healthy(a) {
		t.Error("ejection after a success lasted beyond 30 s")
	}

	// Retain forgets departed endpoints.
	fail(5)
	h.Retain([]string{"10.0.0.2:80"})
	if !h.Healthy(a) {
		t.Error("Retain kept a departed endpoint's ejection")
	}
}
