package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/storage"
)

// ScheduledSnapshotName is the --name of the snapshots the schedule takes.
const ScheduledSnapshotName = "etcd-snapshot"

// runSnapshots takes a snapshot of the embedded etcd at each time of the
// schedule and prunes the scheduled ones beyond the retention. A failed
// snapshot is logged and tried again at the next time.
func (s *Server) runSnapshots(ctx context.Context, endpoints func() []string) error {
	sched, err := cron.ParseStandard(s.cfg.SnapshotSchedule)
	if err != nil {
		return err
	}
	log := s.cfg.Log.With("component", "etcd-snapshots")
	for {
		next := sched.Next(time.Now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		snap, err := storage.Save(ctx, storage.SaveOptions{
			Endpoints: endpoints(), Dir: s.Paths.Snapshots, Name: ScheduledSnapshotName,
			Node: Hostname(), EncryptionConfig: s.Paths.EncryptionConfig, Now: time.Now(),
		})
		if err != nil {
			log.Error("scheduled etcd snapshot failed", "err", err)
			continue
		}
		log.Info("etcd snapshot saved", "file", snap.Path, "bytes", snap.Size)
		deleted, err := storage.PruneSnapshots(s.Paths.Snapshots, ScheduledSnapshotName, Hostname(), s.cfg.SnapshotRetention)
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
