package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/internal/storage"
)

// RotateCertificates moves the server's leaf certificates and client
// kubeconfigs (not the CA, not the service-account key) into
// DATA/tls/rotated-UNIXTIME, so that the next start issues new ones. The
// server must be stopped. It returns the files moved.
func RotateCertificates(dataDir string, now time.Time) ([]string, error) {
	p := PathsIn(dataDir)
	if err := refuseRunning(p); err != nil {
		return nil, err
	}
	backup := filepath.Join(p.TLSDir, fmt.Sprintf("rotated-%d", now.Unix()))
	var moved []string
	for _, f := range p.issued() {
		if err := moveInto(f, backup, &moved); err != nil {
			return moved, err
		}
		if strings.HasSuffix(f, ".crt") {
			if err := moveInto(strings.TrimSuffix(f, ".crt")+".key", backup, &moved); err != nil {
				return moved, err
			}
		}
	}
	return moved, nil
}

// issued are the credentials a server issues itself from its CAs (at
// start, and when they are due): the certificates of its key pairs
// (NAME.crt beside NAME.key) and its kubeconfigs.
func (p Paths) issued() []string {
	return []string{
		filepath.Join(p.TLSDir, servingPair+".crt"), filepath.Join(p.TLSDir, kubeletClientPair+".crt"),
		filepath.Join(p.TLSDir, metricsServerPair+".crt"), filepath.Join(p.TLSDir, frontProxyDir, proxyClientPair+".crt"),
		filepath.Join(p.TLSDir, controllerManagerPair+".crt"), filepath.Join(p.TLSDir, schedulerPair+".crt"),
		filepath.Join(p.EtcdTLSDir, etcdMemberPair+".crt"),
		filepath.Join(p.TLSDir, controllerManagerKubeconfigFile), filepath.Join(p.TLSDir, schedulerKubeconfigFile),
		filepath.Join(p.TLSDir, metricsServerKubeconfigFile), p.Kubeconfig,
	}
}

// RotateCA replaces the cluster CA (and, for HA servers, the etcd CA) of
// the stopped server with new ones cross-signed by the old, and sets the
// leaves and kubeconfigs aside as RotateCertificates does: the next start
// issues them from the new CA. The old CA stays in the trust bundle, so
// certificates it signed (nodes', other servers') keep working, and the
// cross-signed CA in the serving chains keeps clients that trust only the
// old CA (agents, existing kubeconfigs, join tokens) working too. HA
// servers take the new CA from the first that starts with it (see
// publishServerBootstrap); restarting them reissues their certificates.
// It returns the files set aside.
func RotateCA(dataDir string, now time.Time) ([]string, error) {
	p := PathsIn(dataDir)
	if err := refuseRunning(p); err != nil {
		return nil, err
	}
	if _, err := os.Stat(p.CACert); err != nil {
		return nil, fmt.Errorf("%w: no cluster CA in %s: is it a server's data dir?", component.ErrConfig, dataDir)
	}
	backup := filepath.Join(p.TLSDir, fmt.Sprintf("rotated-%d", now.Unix()))
	moved := []string{filepath.Join(p.TLSDir, pki.CACert), filepath.Join(p.TLSDir, pki.CAKey)}
	if _, err := pki.RotateCA(p.TLSDir, backup, now); err != nil {
		return nil, fmt.Errorf("rotate the cluster CA: %w", err)
	}
	if p.HA() {
		if _, err := pki.RotateCA(p.EtcdTLSDir, filepath.Join(backup, "etcd"), now); err != nil {
			return moved, fmt.Errorf("rotate the etcd CA: %w", err)
		}
		moved = append(moved, filepath.Join(p.EtcdTLSDir, pki.CACert), filepath.Join(p.EtcdTLSDir, pki.CAKey))
	}
	leaves, err := RotateCertificates(dataDir, now)
	return append(moved, leaves...), err
}

func moveInto(path, dir string, moved *[]string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(dir, filepath.Base(path))); err != nil {
		return err
	}
	*moved = append(*moved, path)
	return nil
}

// refuseRunning fails when a server runs on the data dir (its embedded
// etcd answers).
func refuseRunning(p Paths) error {
	if url, err := storage.EmbeddedEndpoint(p.EtcdURL); err == nil {
		if err := storage.Ping(url); err == nil {
			return fmt.Errorf("%w: a server is running on %s (its etcd answers at %s): stop it first", component.ErrConfig, p.DataDir, url)
		}
	}
	return nil
}

// renewEvery is how often a running server looks for certificates to renew.
const renewEvery = 12 * time.Hour

// renewCertificates issues again, every renewEvery until ctx ends, the
// certificates that have come within pki.RenewBefore of their expiry while
// the server runs, as its start does. The API server and etcd load their
// new files by themselves; the controller manager and the scheduler read
// their kubeconfigs at the next start, their old certificates still valid
// for weeks.
func (s *Server) renewCertificates(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(renewEvery):
		}
		renewed, err := s.renewOnce()
		if err != nil {
			s.cfg.Log.Warn("renew certificates", "err", err)
		}
		if len(renewed) > 0 {
			s.cfg.Log.Info("certificates renewed before their expiry", "files", renewed)
		}
	}
}

// renewOnce issues what is due and returns the files it rewrote.
func (s *Server) renewOnce() ([]string, error) {
	// By content: a rewrite within the file system's timestamp tick
	// leaves the modification time as it was.
	watched := s.Paths.issued()
	before := make(map[string][]byte, len(watched))
	for _, f := range watched {
		if data, err := os.ReadFile(f); err == nil {
			before[f] = data
		}
	}
	if _, err := preparePKI(s.cfg, s.URL); err != nil {
		return nil, err
	}
	if s.cfg.haMode() {
		if _, err := etcdMember(s.cfg); err != nil {
			return nil, err
		}
	}
	var renewed []string
	for f, old := range before {
		if data, err := os.ReadFile(f); err == nil && !bytes.Equal(data, old) {
			renewed = append(renewed, f)
		}
	}
	sort.Strings(renewed)
	return renewed, nil
}
