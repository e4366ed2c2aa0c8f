package apiserver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// load creates ConfigMaps named prefix-0, prefix-1, … from several
// goroutines and records every one the server acknowledged.
type load struct {
	client kubernetes.Interface
	ns     string
	prefix string

	acked  atomic.Int64
	failed atomic.Int64

	mu sync.Mutex // guards the following
	// ok holds the index of every acknowledged create.
	ok map[int]bool
	// lastErr is the latest failure, for the log.
	lastErr error
}

func newLoad(client kubernetes.Interface, ns, prefix string) *load {
	return &load{client: client, ns: ns, prefix: prefix, ok: map[int]bool{}}
}

func (l *load) name(i int) string { return fmt.Sprintf("%s-%d", l.prefix, i) }

// create creates object i and records the outcome. AlreadyExists counts as
// acknowledged: an earlier attempt that reported an error did land.
func (l *load) create(ctx context.Context, i int) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := l.client.CoreV1().ConfigMaps(l.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: l.name(i)},
		Data:       map[string]string{"index": strconv.Itoa(i)},
	}, metav1.CreateOptions{})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil || apierrors.IsAlreadyExists(err) {
		l.ok[i] = true
		l.acked.Add(1)
		return
	}
	l.failed.Add(1)
	l.lastErr = err
}

// run creates objects [from, to) with workers goroutines and returns once
// all are attempted.
func (l *load) run(ctx context.Context, workers, from, to int) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				l.create(ctx, i)
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// verify checks every acknowledged object is stored with its data, with a
// consistent list through client.
func (l *load) verify(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	ctx := e2eutil.Context(t, 2*time.Minute)
	list, err := client.CoreV1().ConfigMaps(l.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list configmaps: %v", err)
	}
	stored := map[string]string{}
	for _, cm := range list.Items {
		stored[cm.Name] = cm.Data["index"]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for i := range l.ok {
		if got, ok := stored[l.name(i)]; !ok || got != strconv.Itoa(i) {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged ConfigMap %s/%s is missing or wrong after restart (data %q)", l.ns, l.name(i), got)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged ConfigMaps lost", lost, len(l.ok))
	}
	t.Logf("%d acknowledged, %d failed, %d stored in %s (an unacknowledged create may have landed)", len(l.ok), l.failed.Load(), len(stored), l.ns)
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	ctx := e2eutil.Context(t, time.Minute)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// TestDurability kills the server with SIGKILL in the middle of a write load
// and checks, after a restart on the same data directory, that every write
// it acknowledged is there; then stops it with SIGTERM (it must exit 0,
// promptly) and checks the objects survive that restart too.
func TestDurability(t *testing.T) {
	const (
		total   = 300
		workers = 8
		killAt  = 100 // acknowledged creates before the kill
	)
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	client := srv.Client()
	createNamespace(t, client, "durable")

	l := newLoad(client, "durable", "cm")
	done := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(done)
		l.run(context.Background(), workers, 0, total)
	}()
	deadline := time.After(2 * time.Minute)
	for l.acked.Load() < killAt {
		select {
		case <-done:
			t.Fatalf("the load finished before %d creates were acknowledged (%d acknowledged, %d failed, last error %v)", killAt, l.acked.Load(), l.failed.Load(), l.lastErr)
		case <-deadline:
			t.Fatalf("only %d creates acknowledged within 2 minutes (last error %v)", l.acked.Load(), l.lastErr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	srv.Kill()
	t.Logf("kill -9 after %s with %d creates acknowledged", time.Since(began).Round(time.Millisecond), l.acked.Load())
	<-done
	if l.failed.Load() == 0 {
		t.Fatalf("no create failed: the kill did not land in the middle of the load")
	}
	t.Logf("load over: %d acknowledged, %d failed (last error: %v)", l.acked.Load(), l.failed.Load(), l.lastErr)

	srv.Start()
	client = srv.Client()
	l.verify(t, client)

	// The server takes writes again; then a clean stop keeps everything.
	l.client = client
	l.run(context.Background(), workers, total, total+50)
	if n := l.failed.Load(); n > int64(total) {
		t.Fatalf("creates fail after the restart (last error %v)", l.lastErr)
	}
	code, took := srv.Stop(30 * time.Second)
	t.Logf("SIGTERM: exit code %d after %s", code, took.Round(time.Millisecond))
	if code != 0 || took > 20*time.Second {
		t.Errorf("SIGTERM: exit code %d after %s, want exit 0 within 20s", code, took.Round(time.Millisecond))
	}
	srv.Start()
	l.verify(t, srv.Client())
}
