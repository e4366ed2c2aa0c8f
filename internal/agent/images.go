package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
// the CRI plugin looks), so skiff's own images run with no registry, and
// lists their images for the node's mirror (importedList). Importing an image already
// present is cheap and keeps its digest.
func importImages(ctx context.Context, socket string, tars []string, log *slog.Logger) error {
	for _, tar := range tars {
		if err := importTar(ctx, socket, tar, nil); err != nil {
			return err
		}
		refs, err := images.ArchiveRefs(tar)
		if err != nil {
			return err
		}
		if err := markImported(socket, refs); err != nil {
			return err
		}
		log.Debug("image imported", "file", tar)
	}
	return nil
}

// importedList, beside containerd's socket, lists the references imported
// from tarballs (at the agent's start or by `skiff image import`), one per
// line: the node's mirror serves those, so that imagePullPolicy Always
// finds them with no registry, and not the images pulled from registries,
// which Always asks their registry for. (Not an image label: the CRI
// replaces an image's labels when it pulls it.)
func importedList(socket string) string {
	return filepath.Join(filepath.Dir(socket), "imported-images")
}

// markImported adds refs to the imported list.
func markImported(socket string, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	have, err := readImported(socket)
	if err != nil {
		return err
	}
	var add strings.Builder
	for _, r := range refs {
		if !have[r] {
			have[r] = true
			add.WriteString(r + "\n")
		}
	}
	if add.Len() == 0 {
		return nil
	}
	// Appends of a few lines land whole: the agent and `skiff image
	// import` may write at once.
	f, err := os.OpenFile(importedList(socket), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(add.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// unmarkImported drops refs from the imported list.
func unmarkImported(socket string, refs []string) error {
	have, err := readImported(socket)
	if err != nil || len(have) == 0 {
		return err
	}
	for _, r := range refs {
		delete(have, r)
	}
	keep := make([]string, 0, len(have))
	for r := range have {
		keep = append(keep, r+"\n")
	}
	slices.Sort(keep)
	tmp := importedList(socket) + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(keep, "")), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, importedList(socket))
}

func readImported(socket string) (map[string]bool, error) {
	data, err := os.ReadFile(importedList(socket))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[l] = true
		}
	}
	return out, nil
}

// importedImages lists the images the node's mirror serves: those of the
// imported list the node has, reference to digest.
func importedImages(ctx context.Context, socket string) (map[string]string, error) {
	imported, err := readImported(socket)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if len(imported) == 0 {
		return out, nil
	}
	list, err := ListImages(ctx, socket)
	if err != nil {
		return nil, err
	}
	for _, i := range list {
		if imported[i.Ref] {
			out[i.Ref] = i.Digest
		}
	}
	return out, nil
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
	bin, err := FindProgram("ctr")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)...)
	cmd.Stdin = stdin
	// Standard output only: ctr warns on standard error (containerd 2.2+
	// on cgroup v1 hosts: a deprecation line before every listing).
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(append(out, stderr.Bytes()...)))
	}
	return out, nil
}

// ImportImage loads an OCI or docker-archive tarball (file, or stdin when
// file is "-") into the node's images, where the kubelet finds them
// (imagePullPolicy Never or IfNotPresent runs them with no registry; Always
// pulls them from the node's mirror). It returns the references imported
// or changed.
func ImportImage(ctx context.Context, socket, file string, stdin io.Reader) ([]string, error) {
	before, err := ListImages(ctx, socket)
	if err != nil {
		return nil, err
	}
	if file == "-" {
		// The tarball is read twice (its references, then the import):
		// standard input goes to a file first.
		tmp, err := os.CreateTemp("", "skiff-image-*.tar")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp.Name())
		_, err = io.Copy(tmp, stdin)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("import image from standard input: %w", err)
		}
		file = tmp.Name()
	}
	named, err := images.ArchiveRefs(file)
	if err != nil {
		return nil, fmt.Errorf("import image: %w", err)
	}
	if err := importTar(ctx, socket, file, nil); err != nil {
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
	return refs, markImported(socket, append(named, refs...))
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

// RemoveImages removes images by reference (and from the imported list:
// pulled again from a registry later, they are not the node's to serve).
func RemoveImages(ctx context.Context, socket string, refs []string) error {
	if _, err := ctr(ctx, socket, nil, append([]string{"images", "rm"}, refs...)...); err != nil {
		return err
	}
	return unmarkImported(socket, refs)
}

// startMirror serves the node's imported images (importedList) from a
// loopback registry that the agent's containerd uses as the mirror of every
// registry host, so that imagePullPolicy Always (the default for :latest)
// pulls them with no registry reachable. It keeps the port of its last run
// (saved beside containerd's config), because a containerd left running by
// an earlier agent still has that address in its configuration.
func startMirror(dir string, log *slog.Logger) (*images.Mirror, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "containerd.sock")
	store := images.ContentStore{
		Dir:  filepath.Join(dir, "root", "io.containerd.content.v1.content"),
		List: func(ctx context.Context) (map[string]string, error) { return importedImages(ctx, socket) },
	}
	portFile := filepath.Join(dir, "mirror-address")
	addr := "127.0.0.1:0"
	if saved, err := os.ReadFile(portFile); err == nil {
		addr = strings.TrimSpace(string(saved))
	}
	m, err := images.NewMirror(addr, store)
	if err != nil && addr != "127.0.0.1:0" {
		log.Warn("image mirror: saved address taken; using a new one", "addr", addr, "err", err)
		m, err = images.NewMirror("127.0.0.1:0", store)
	}
	if err != nil {
		return nil, fmt.Errorf("image mirror: %w", err)
	}
	if err := os.WriteFile(portFile, []byte(m.Addr()), 0o600); err != nil {
		m.Close()
		return nil, err
	}
	log.Info("image mirror serving", "url", m.URL())
	return m, nil
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
