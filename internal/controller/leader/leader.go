// Package leader runs a controller of skiff's only while this process holds
// a Lease in kube-system, so that every server may run it and one acts at a
// time: the controllers of the upstream controller manager and scheduler
// elect theirs the same way.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader election timing of every leader-elected component of skiff's
// servers: upstream's controller manager and scheduler (their
// --leader-elect-* flags) and skiff's controllers. Shorter than upstream's
// defaults (15 s, 10 s, 2 s), so that another server leads within 15 s of
// a leader's death (issue 14): a candidate polls every RetryPeriod to 2.2
// RetryPeriods (client-go's jitter), so it may see the last renewal up to
// 3.3 s late and take the Lease up to 3.3 s after it expired: 14.6 s at
// worst, about 10 s typically. A leader that cannot renew for 6 s steps
// down (its controllers stop; skiff's supervisor runs them again as a
// candidate).
const (
	LeaseDuration = 8 * time.Second
	RenewDeadline = 6 * time.Second
	RetryPeriod   = 1500 * time.Millisecond
)

// Identity is a holder identity for this process: the host name and a
// random suffix, as upstream's components make theirs.
func Identity() string {
	host, _ := os.Hostname()
	return host + "_" + string(uuid.NewUUID())
}

// Run runs run while identity holds the Lease kube-system/lease, and
// returns when ctx ends (nil), when run returns (its error), or when the
// Lease is lost (an error: its caller may run it again). The Lease is
// released when ctx ends, possibly a moment before run has returned: run
// must tolerate a short overlap with the next holder. Run returns after
// run has.
func Run(ctx context.Context, client kubernetes.Interface, lease, identity string, log *slog.Logger, run func(context.Context) error) error {
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, metav1.NamespaceSystem, lease,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: identity})
	if err != nil {
		return err
	}
	electCtx, stepDown := context.WithCancel(ctx)
	defer stepDown()
	var (
		mu sync.Mutex // guards the following
		// over is set once the elector has returned: a leading callback
		// that starts after that does nothing.
		over    bool
		running sync.WaitGroup
		runErr  error
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            lease,
		LeaseDuration:   LeaseDuration,
		RenewDeadline:   RenewDeadline,
		RetryPeriod:     RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				running.Add(1)
				mu.Unlock()
				defer running.Done()
				log.Info("acquired the lease", "lease", lease, "identity", identity)
				err := run(ctx)
				mu.Lock()
				runErr = err
				mu.Unlock()
				stepDown() // a controller that stopped by itself gives up the Lease
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(electCtx)
	mu.Lock()
	over = true
	mu.Unlock()
	running.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if runErr != nil {
		return runErr
	}
	return fmt.Errorf("lost the lease %s/%s", metav1.NamespaceSystem, lease)
}
