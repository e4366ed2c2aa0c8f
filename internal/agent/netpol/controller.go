package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/skiffdev/skiff/internal/changes"
)

// Config is what a Controller needs.
type Config struct {
	// NodeName is the node whose pods the rules protect.
	NodeName string
	// Client lists and watches NetworkPolicies, Pods and Namespaces
	// cluster-wide (the node's credentials, with the skiff:network-policy
	// ClusterRole).
	Client kubernetes.Interface
	// NFT is the table to write; nil means the real nft, table inet
	// skiff-netpol.
	NFT knftables.Interface
	// Resync re-applies the rule set this often even without changes,
	// repairing a table someone else touched (default 30 s).
	Resync time.Duration
	Log    *slog.Logger
}

// Controller keeps table inet skiff-netpol in step with the cluster's
// NetworkPolicies for one node.
type Controller struct {
	cfg Config
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Controller, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("netpol: Config.NodeName is empty")
	}
	if cfg.Client == nil {
		return nil, errors.New("netpol: Config.Client is nil")
	}
	if cfg.NFT == nil {
		nft, err := knftables.New(knftables.InetFamily, Table)
		if err != nil {
			return nil, fmt.Errorf("netpol: nftables: %w", err)
		}
		cfg.NFT = nft
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Controller{cfg: cfg}, nil
}

// Run watches the cluster and applies the rendered rule set after every
// change until ctx ends. It returns after its informers have stopped.
func (c *Controller) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(c.cfg.Client, 10*time.Minute)
	policies := factory.Networking().V1().NetworkPolicies()
	pods := factory.Core().V1().Pods()
	namespaces := factory.Core().V1().Namespaces()
	changed := changes.New()
	if err := changed.Watch(policies.Informer(), pods.Informer(), namespaces.Informer()); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), policies.Informer().HasSynced, pods.Informer().HasSynced, namespaces.Informer().HasSynced) {
		return nil // ctx ended
	}
	c.cfg.Log.Info("enforcing network policies", "node", c.cfg.NodeName, "table", "inet "+Table)

	last, force := "", true
	for {
		pl, err1 := policies.Lister().List(labels.Everything())
		po, err2 := pods.Lister().List(labels.Everything())
		ns, err3 := namespaces.Lister().List(labels.Everything())
		retry := false
		if err := errors.Join(err1, err2, err3); err != nil {
			c.cfg.Log.Warn("list for network policies", "err", err)
			retry = true
		} else {
			objs := Render(c.cfg.NodeName, pl, po, ns)
			text := transactionText(objs)
			if force || text != last {
				start := time.Now()
				if err := apply(ctx, c.cfg.NFT, objs); err != nil {
					c.cfg.Log.Warn("apply network policy rules", "err", err)
					retry, last = true, ""
				} else {
					if text != last {
						c.cfg.Log.Debug("applied network policy rules", "policies", len(pl), "objects", len(objs), "took", time.Since(start))
					}
					last = text
				}
			}
		}
		wait := c.cfg.Resync
		if retry {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed.C():
			force = false
		case <-time.After(wait):
			force = true
		}
	}
}

// transactionText is objs as nft commands (adds into an empty table): the
// form golden files hold, and what Run compares to skip no-op changes.
func transactionText(objs []knftables.Object) string {
	tx := knftables.NewFake(knftables.InetFamily, Table).NewTransaction()
	for _, o := range objs {
		tx.Add(o)
	}
	return tx.String()
}

// Teardown removes the node's policy rules (table inet skiff-netpol), for
// when its agent is gone. It is idempotent.
func Teardown(ctx context.Context) {
	if nft, err := knftables.New(knftables.InetFamily, Table); err == nil {
		tx := nft.NewTransaction()
		tx.Delete(&knftables.Table{})
		_ = nft.Run(ctx, tx) // not found: nothing to remove
	}
}
