package server

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffdev/skiff/internal/component"
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
	for _, f := range []string{
		servingPair + ".crt", servingPair + ".key", kubeletClientPair + ".crt", kubeletClientPair + ".key",
		controllerManagerKubeconfigFile, schedulerKubeconfigFile,
	} {
		if err := moveInto(filepath.Join(p.TLSDir, f), backup, &moved); err != nil {
			return moved, err
		}
	}
	for _, f := range []string{etcdMemberPair + ".crt", etcdMemberPair + ".key"} {
		if err := moveInto(filepath.Join(p.EtcdTLSDir, f), backup, &moved); err != nil {
			return moved, err
		}
	}
	return moved, moveInto(p.Kubeconfig, backup, &moved)
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
