package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skiffdev/skiff/internal/component"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what the components of a test did, in order.
type journal struct {
	mu     sync.Mutex // guards events
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// service runs until ctx ends, noting its start and stop.
func (j *journal) service(name string) Component {
	return Component{Name: name, Run: func(ctx context.Context) error {
		j.add("start %s", name)
		<-ctx.Done()
		j.add("stop %s", name)
		return nil
	}}
}

// readyService is a service that is ready once its start is noted.
func (j *journal) readyService(name string) Component {
	started := make(chan struct{})
	c := j.service(name)
	c.Run = func(ctx context.Context) error {
		j.add("start %s", name)
		close(started)
		<-ctx.Done()
		j.add("stop %s", name)
		return nil
	}
	c.Ready = Closed(started)
	return c
}

func TestGroupStartsInOrderAndStopsInReverse(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	api := j.readyService("api")
	bootstrap := Component{Name: "bootstrap", Step: true, Run: func(context.Context) error {
		j.add("bootstrap")
		return nil
	}}
	// The controllers are ready once their start is noted: without a
	// Ready, the scheduler could start, and end the group, before the
	// controllers' goroutine notes its start.
	controllers := j.readyService("controllers")
	last := j.service("scheduler")
	last.Ready = func(context.Context) error { cancel(); return nil }
	err := Group{Log: quiet, Components: []Component{j.service("etcd"), api, bootstrap, controllers, last}}.Run(ctx)
	if err != nil {
		t.Fatalf("Run = %v, want nil after ctx ended", err)
	}
	got := j.get()
	// etcd has no Ready: the api may start before etcd's goroutine notes
	// its start, so only the order of the rest is fixed.
	want := []string{"bootstrap", "start controllers", "start scheduler", "stop scheduler", "stop controllers", "stop api", "stop etcd"}
	var fixed []string
	for _, e := range got {
		if slices.Contains(want, e) {
			fixed = append(fixed, e)
		}
	}
	if !slices.Equal(fixed, want) {
		t.Errorf("events = %q, want in this order %q", got, want)
	}
	if i, k := slices.Index(got, "start api"), slices.Index(got, "bootstrap"); i < 0 || i > k {
		t.Errorf("events = %q: bootstrap ran before the api was ready", got)
	}
}

func TestGroupFailureStopsTheRestAndNamesTheComponent(t *testing.T) {
	var j journal
	boom := errors.New("boom")
	failing := Component{Name: "dns", Run: func(context.Context) error { return boom }}
	err := Group{Log: quiet, Components: []Component{j.service("etcd"), j.service("api"), failing}}.Run(context.Background())
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "dns: ") {
		t.Fatalf("Run = %v, want dns: boom", err)
	}
	got := j.get()
	if i, k := slices.Index(got, "stop api"), slices.Index(got, "stop etcd"); i < 0 || k < i {
		t.Errorf("events = %q, want api stopped, then etcd", got)
	}
}

func TestGroupStepFailureStopsBeforeLaterComponents(t *testing.T) {
	var j journal
	step := Component{Name: "bootstrap", Step: true, Run: func(context.Context) error { return errors.New("no token") }}
	err := Group{Log: quiet, Components: []Component{j.service("api"), step, j.service("controllers")}}.Run(context.Background())
	if err == nil || err.Error() != "bootstrap: no token" {
		t.Fatalf("Run = %v, want bootstrap: no token", err)
	}
	if slices.Contains(j.get(), "start controllers") {
		t.Errorf("controllers started after a failed step: %q", j.get())
	}
}

func TestGroupReadyFailure(t *testing.T) {
	var j journal
	api := j.service("api")
	api.Ready = func(context.Context) error { return errors.New("not ready within 5 minutes") }
	err := Group{Log: quiet, Components: []Component{api, j.service("controllers")}}.Run(context.Background())
	if err == nil || err.Error() != "api: not ready within 5 minutes" {
		t.Fatalf("Run = %v", err)
	}
	if got := j.get(); slices.Contains(got, "start controllers") || !slices.Contains(got, "stop api") {
		t.Errorf("events = %q, want api stopped and controllers never started", got)
	}
}

func TestGroupFailureWhileWaitingForReady(t *testing.T) {
	var j journal
	failing := Component{Name: "etcd", Run: func(context.Context) error { return errors.New("disk full") }}
	api := j.service("api")
	api.Ready = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	err := Group{Log: quiet, Components: []Component{failing, api}}.Run(context.Background())
	if err == nil || err.Error() != "etcd: disk full" {
		t.Fatalf("Run = %v, want etcd: disk full", err)
	}
}

func TestGroupRestartsUntilConfigError(t *testing.T) {
	runs := 0
	c := Component{Name: "kube-x", Restart: &Backoff{Initial: time.Millisecond, Max: time.Millisecond, Reset: time.Hour}, Run: func(context.Context) error {
		runs++
		if runs < 3 {
			return errors.New("crashed")
		}
		return fmt.Errorf("%w: bad flag", component.ErrConfig)
	}}
	err := Group{Log: quiet, Components: []Component{c}}.Run(context.Background())
	if !errors.Is(err, component.ErrConfig) || runs != 3 {
		t.Fatalf("Run = %v after %d runs, want the configuration error after 3", err, runs)
	}
}

func TestGroupFinishedTaskDoesNotStopTheGroup(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	task := Component{Name: "label-node", Run: func(context.Context) error { j.add("labelled"); return nil }}
	watcher := j.service("watcher")
	watcher.Ready = func(context.Context) error {
		for !slices.Contains(j.get(), "labelled") {
			time.Sleep(time.Millisecond)
		}
		cancel()
		return nil
	}
	if err := (Group{Log: quiet, Components: []Component{task, watcher}}).Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestGroupLeavesAStuckComponentBehind(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := Component{Name: "stuck", StopTimeout: 20 * time.Millisecond, Run: func(ctx context.Context) error {
		<-release
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := (Group{Log: quiet, Components: []Component{stuck}}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s with a stuck component, want about its StopTimeout", d)
	}
}

func TestGroupErrorNamesTheComponentOnce(t *testing.T) {
	c := Component{Name: "kube-x", Run: func(context.Context) error { return errors.New("kube-x: invalid configuration") }}
	err := Group{Log: quiet, Components: []Component{c}}.Run(context.Background())
	if err == nil || err.Error() != "kube-x: invalid configuration" {
		t.Fatalf("Run = %v, want kube-x: invalid configuration", err)
	}
}

func TestGroupProgress(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	step := Component{Name: "bootstrap", Step: true, Run: func(context.Context) error { return nil }}
	g := Group{Log: quiet, Components: []Component{j.service("etcd"), step, j.service("controllers")},
		Progress: func(done, total int, waiting string) {
			j.add("%d/%d %s", done, total, waiting)
			if done == total {
				cancel()
			}
		}}
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var progress []string
	for _, e := range j.get() {
		if strings.Contains(e, "/3") {
			progress = append(progress, e)
		}
	}
	want := []string{"0/3 etcd", "1/3 bootstrap", "2/3 controllers", "3/3 "}
	if !slices.Equal(progress, want) {
		t.Errorf("progress %q, want %q", progress, want)
	}
}
