package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/skiffdev/skiff/internal/images"
)

// importImages loads every OCI tarball in dir into the runtime's k8s.io
// namespace (where the CRI plugin looks), so skiff's own images run with no
// registry. Importing an image already present is cheap and keeps its digest.
func importImages(ctx context.Context, socket, dir string, log *slog.Logger) error {
	if dir == "" {
		return nil
	}
	tars, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return err
	}
	for _, tar := range tars {
		out, err := exec.CommandContext(ctx, "ctr", "--address", socket, "--namespace", "k8s.io",
			"images", "import", "--no-unpack", tar).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import image %s: %v: %s", tar, err, out)
		}
		log.Debug("image imported", "file", tar)
	}
	return nil
}

// startMirror serves skiff's images from a loopback registry that the
// agent's containerd uses as the mirror for "localhost", so that
// imagePullPolicy Always (the default for :latest) pulls them with no
// registry reachable. It keeps the port of its last run (saved beside
// containerd's config), because a containerd left running by an earlier
// agent still has that address in its configuration.
func startMirror(ctx context.Context, dir, imagesDir string, log *slog.Logger) (*images.Mirror, error) {
	if imagesDir == "" {
		return nil, nil
	}
	tars, err := filepath.Glob(filepath.Join(imagesDir, "*.tar"))
	if err != nil || len(tars) == 0 {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	portFile := filepath.Join(dir, "mirror-address")
	addr := "127.0.0.1:0"
	if saved, err := os.ReadFile(portFile); err == nil {
		addr = strings.TrimSpace(string(saved))
	}
	m, err := images.NewMirror(ctx, addr, tars)
	if err != nil && addr != "127.0.0.1:0" {
		log.Warn("image mirror: saved address taken; using a new one", "addr", addr, "err", err)
		m, err = images.NewMirror(ctx, "127.0.0.1:0", tars)
	}
	if err != nil {
		return nil, fmt.Errorf("image mirror: %w", err)
	}
	if err := os.WriteFile(portFile, []byte(m.Addr()), 0o600); err != nil {
		m.Close()
		return nil, err
	}
	log.Info("image mirror serving", "url", m.URL(), "images", len(tars))
	return m, nil
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
