package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"syscall"
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
		log.Info("image imported", "file", tar)
	}
	return nil
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
