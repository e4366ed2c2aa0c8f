package apiserver

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestExternalEtcd runs the server over a three-member etcd cluster, kills
// the etcd leader with SIGKILL under a read and write load, and checks the
// server keeps serving both and loses nothing it acknowledged.
func TestExternalEtcd(t *testing.T) {
	const (
		workers     = 4
		beforeKill  = 100 // acknowledged creates before the kill
		afterKill   = 150 // acknowledged creates wanted after it
		writeWindow = 2 * time.Minute
	)
	cluster := e2eutil.StartEtcdCluster(t, 3)
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{
		Args: []string{"--datastore-endpoint", strings.Join(cluster.Endpoints(), ",")},
	})
	client := srv.Client()
	createNamespace(t, client, "failover")
	l := newLoad(client, "failover", "cm")

	// Writers create objects with ever higher indexes until stopped; readers
	// read back objects already acknowledged.
	ctx, stop := context.WithCancel(context.Background())
	var next atomic.Int64
	var reads, readErrs atomic.Int64
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.create(ctx, int(next.Add(1)-1))
			}
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(next.Load())
				if n == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				i := rand.IntN(n)
				l.mu.Lock()
				ok := l.ok[i]
				l.mu.Unlock()
				if !ok {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := client.CoreV1().ConfigMaps(l.ns).Get(rctx, l.name(i), metav1.GetOptions{})
				cancel()
				reads.Add(1)
				if err != nil && ctx.Err() == nil {
					readErrs.Add(1)
					t.Logf("read %s: %v", l.name(i), err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	waitAcked := func(n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(writeWindow)
		for l.acked.Load() < n {
			if time.Now().After(deadline) {
				stop()
				wg.Wait()
				t.Fatalf("%s: only %d creates acknowledged within %s (%d failed, last error %v)", what, l.acked.Load(), writeWindow, l.failed.Load(), l.lastErr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(beforeKill, "before the kill")

	leader, err := cluster.Leader()
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	leader.Kill()
	ackedAtKill, failedAtKill := l.acked.Load(), l.failed.Load()
	t.Logf("killed etcd leader %s with %d creates acknowledged", leader.Name, ackedAtKill)
	waitAcked(ackedAtKill+afterKill, "after the kill")
	t.Logf("%d more creates acknowledged %s after the kill; %d failed meanwhile (last error: %v)",
		afterKill, time.Since(killed).Round(time.Millisecond), l.failed.Load()-failedAtKill, l.lastErr)
	stop()
	wg.Wait()
	t.Logf("%d reads, %d failed", reads.Load(), readErrs.Load())

	l.verify(t, client)
	if newLeader, err := cluster.Leader(); err != nil || newLeader == leader {
		t.Errorf("no new etcd leader after the kill: %v", err)
	}
}
