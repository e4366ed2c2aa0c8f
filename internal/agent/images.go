package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/skiffdev/skiff/internal/images"
	builtinimages "github.com/skiffdev/skiff/internal/images/builtin"
)

// imageTarballs are the node's image tarballs: those of the images
// directory, and the images built into the binary (internal/images/builtin,
// written into builtinDir) that it has no file of the same name for.
func imageTarballs(imagesDir, builtinDir string) ([]string, error) {
	var tars []string
	if imagesDir != "" {
		var err error
		if tars, err = filepath.Glob(filepath.Join(imagesDir, "*.tar")); err != nil {
			return nil, err
		}
	}
	embedded, err := builtinimages.Write(builtinDir)
	if err != nil {
		return nil, fmt.Errorf("the images built into skiff: %w", err)
	}
	for _, path := range embedded {
		if _, err := os.Stat(filepath.Join(imagesDir, filepath.Base(path))); imagesDir == "" || err != nil {
			tars = append(tars, path)
		}
	}
	return tars, nil
}

// importImages loads the tarballs into the runtime's k8s.io namespace (where
// the CRI plugin looks), so skiff's own images run with no registry.
// Importing an image already present is cheap and keeps its digest.
func importImages(ctx context.Context, socket string, tars []string, log *slog.Logger) error {
	for _, tar := range tars {
		if err := importTar(ctx, socket, tar, nil); err != nil {
			return err
		}
		log.Debug("image imported", "file", tar)
	}
	return nil
}

// ContainerdSocket is the socket of the containerd an agent with this data
// dir runs.
func ContainerdSocket(dataDir string) string {
	return filepath.Join(dataDir, "containerd", "containerd.sock")
}

// ctr runs containerd's ctr on the CRI's namespace of the containerd at
// socket.
func ctr(ctx context.Context, socket string, stdin io.Reader, args ...string) ([]byte, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("no containerd at %s (is the agent running on this data dir?): %w", socket, err)
	}
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// ImportImage loads an OCI or docker-archive tarball (file, or stdin when
// file is "-") into the node's images, where the kubelet finds them
// (imagePullPolicy Never or IfNotPresent runs them with no registry). It
// returns the references imported.
func ImportImage(ctx context.Context, socket, file string, stdin io.Reader) ([]string, error) {
	before, err := ListImages(ctx, socket)
	if err != nil {
		return nil, err
	}
	if err := importTar(ctx, socket, file, stdin); err != nil {
		return nil, err
	}
	after, err := ListImages(ctx, socket)
	if err != nil {
		return nil, err
	}
	had := map[string]string{}
	for _, i := range before {
		had[i.Ref] = i.Digest
	}
	var refs []string
	for _, i := range after {
		if d, ok := had[i.Ref]; !ok || d != i.Digest {
			refs = append(refs, i.Ref)
		}
	}
	return refs, nil
}

// importTar imports the tarball (stdin for "-") without unpacking it: the
// CRI unpacks an image when a container first uses it.
func importTar(ctx context.Context, socket, file string, stdin io.Reader) error {
	if _, err := ctr(ctx, socket, stdin, "images", "import", "--no-unpack", file); err != nil {
		return fmt.Errorf("import image %s: %w", file, err)
	}
	return nil
}

// Image is one named image of a node.
type Image struct {
	Ref, Digest, Size string
}

// ListImages lists the node's named images (not the digest-only references
// the CRI adds).
func ListImages(ctx context.Context, socket string) ([]Image, error) {
	out, err := ctr(ctx, socket, nil, "images", "ls")
	if err != nil {
		return nil, err
	}
	var list []Image
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		// REF TYPE DIGEST SIZE(2 fields: "1.2 MiB") PLATFORMS LABELS
		if i == 0 || len(f) < 5 || strings.HasPrefix(f[0], "sha256:") {
			continue
		}
		list = append(list, Image{Ref: f[0], Digest: f[2], Size: f[3] + " " + f[4]})
	}
	return list, nil
}

// RemoveImages removes images by reference.
func RemoveImages(ctx context.Context, socket string, refs []string) error {
	_, err := ctr(ctx, socket, nil, append([]string{"images", "rm"}, refs...)...)
	return err
}

// startMirror serves skiff's images from a loopback registry that the
// agent's containerd uses as the mirror for "localhost", so that
// imagePullPolicy Always (the default for :latest) pulls them with no
// registry reachable. It keeps the port of its last run (saved beside
// containerd's config), because a containerd left running by an earlier
// agent still has that address in its configuration.
func startMirror(ctx context.Context, dir string, tars []string, log *slog.Logger) (*images.Mirror, error) {
	if len(tars) == 0 {
		return nil, nil
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
