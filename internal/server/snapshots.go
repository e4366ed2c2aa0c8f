package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/storage"
)

// ScheduledSnapshotName is the --name of the snapshots the schedule takes,
// DefaultSnapshotSchedule when they are taken (every 12 hours, as k3s).
const (
	ScheduledSnapshotName   = "etcd-snapshot"
	DefaultSnapshotSchedule = "0 */12 * * *"
)

// SaveSnapshot snapshots the etcd at endpoints into p.Snapshots as
// NAME-NODE-UNIXTIME, with the encryption keys its Secrets need: what
// `skiff etcd-snapshot save` and the schedule both take.
func SaveSnapshot(ctx context.Context, p Paths, endpoints []string, name string) (storage.Snapshot, error) {
	return storage.Save(ctx, storage.SaveOptions{
		Endpoints: endpoints, Dir: p.Snapshots, Name: name,
		Node: Hostname(), EncryptionConfig: p.EncryptionConfig, Now: time.Now(),
	})
}

// PruneSnapshots deletes this node's oldest snapshots named name beyond
// the newest keep, and returns the names it deleted.
func PruneSnapshots(p Paths, name string, keep int) ([]string, error) {
	return storage.PruneSnapshots(p.Snapshots, name, Hostname(), keep)
}

// runSnapshots takes a snapshot of the embedded etcd at each time of the
// schedule and prunes the scheduled ones beyond the retention. A failed
// snapshot is logged and tried again at the next time.
func (s *Server) runSnapshots(ctx context.Context, endpoints func() []string) error {
	log := s.cfg.Log.With("component", "etcd-snapshots")
	for {
		t := time.NewTimer(time.Until(s.snapshotSchedule.Next(time.Now())))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		snap, err := SaveSnapshot(ctx, s.Paths, endpoints(), ScheduledSnapshotName)
		if err != nil {
			log.Error("scheduled etcd snapshot failed", "err", err)
			continue
		}
		log.Info("etcd snapshot saved", "file", snap.Path, "bytes", snap.Size)
		deleted, err := PruneSnapshots(s.Paths, ScheduledSnapshotName, s.cfg.SnapshotRetention)
		if err != nil {
			log.Error("pruning etcd snapshots failed", "err", err)
		}
		for _, d := range deleted {
			log.Info("etcd snapshot pruned", "name", d)
		}
	}
}

// ClusterReset restores the embedded etcd from a snapshot file, with the
// server stopped: the current data is moved aside (the returned folder),
// never deleted. The encryption keys saved with the snapshot are added to
// the configuration (as older keys), so every restored Secret reads.
func ClusterReset(cfg Config, snapshot string) (old string, err error) {
	cfg.Defaults()
	if len(cfg.DatastoreEndpoints) > 0 {
		return "", fmt.Errorf("%w: --cluster-reset restores the embedded etcd; restore an external etcd with its own tools", component.ErrConfig)
	}
	if cfg.DataDir == "" {
		return "", fmt.Errorf("%w: data dir is empty", component.ErrConfig)
	}
	paths := cfg.Paths()
	if err := refuseRunning(paths); err != nil {
		return "", err
	}
	if err := storage.VerifySnapshot(snapshot); err != nil {
		return "", err
	}
	if keys := storage.SnapshotEncryptionConfig(snapshot); keys != "" {
		if err := mergeKeys(paths.EncryptionConfig, keys); err != nil {
			return "", fmt.Errorf("encryption keys saved with %s: %w", snapshot, err)
		}
	}
	return storage.Restore(snapshot, paths.Etcd, time.Now())
}

// mergeKeys adds the keys of the configuration at from that the one at to
// lacks, after its own.
func mergeKeys(to, from string) error {
	saved, _, err := secretsencrypt.Load(from)
	if err != nil {
		return err
	}
	cur, _, err := secretsencrypt.Load(to)
	if errors.Is(err, os.ErrNotExist) {
		_, err = secretsencrypt.Write(to, saved)
		return err
	}
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range cur.Keys {
		have[k.Name] = true
	}
	for _, k := range saved.Keys {
		if !have[k.Name] {
			cur.Keys = append(cur.Keys, k)
		}
	}
	_, err = secretsencrypt.Write(to, cur)
	return err
}
