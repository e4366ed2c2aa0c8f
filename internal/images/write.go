package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Image is an image Write assembles from files on the build host: the
// entries of its one layer and its config. Other builds than skiff's own
// images use it (the Kubernetes conformance suite's stand-in images,
// conformance/).
type Image struct {
	Files      []File
	Entrypoint []string
	Cmd        []string
	// User, when set, is the config's user: "1234", "name" or
	// "uid:gid".
	User string
}

// File is one entry of an image's layer: a regular file (Data, or the
// contents of Src on the build host), a symlink (Link) or a directory
// (Dir). Path is relative to /; Mode holds the permission bits (setuid
// and setgid included).
type File struct {
	Path string
	Mode int64
	Data []byte
	Src  string
	Link string
	Dir  bool
}

// BusyboxFiles is the busybox userland of a static busybox binary (its
// applets as symlinks, /etc/passwd and /etc/group, /tmp), as in skiff's
// busybox image.
func BusyboxFiles(ctx context.Context, binary string) ([]File, error) {
	applets, err := listApplets(ctx, binary)
	if err != nil {
		return nil, err
	}
	fs, err := busyboxFiles(binary, applets)
	if err != nil {
		return nil, err
	}
	out := make([]File, len(fs))
	for i, f := range fs {
		out[i] = File{Path: f.path, Mode: f.mode, Data: f.data, Src: f.src, Link: f.link, Dir: f.dir}
	}
	return out, nil
}

// Write writes img, for linux/arch, as an OCI image layout tarball at path
// holding it under each of refs (full references, e.g.
// registry.k8s.io/pause:3.10.2), creating path's directory.
func Write(path string, refs []string, img Image, arch string) error {
	if len(refs) == 0 {
		return fmt.Errorf("images: %s: no reference", path)
	}
	s := spec{name: refs[0], entrypoint: img.Entrypoint, cmd: img.Cmd, user: img.User}
	for _, f := range img.Files {
		s.files = append(s.files, file{path: f.Path, mode: f.Mode, data: f.Data, src: f.Src, link: f.Link, dir: f.Dir})
	}
	built, err := s.image(arch)
	if err != nil {
		return fmt.Errorf("images: build %s: %w", refs[0], err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	if err := writeArchive(path, built, refs); err != nil {
		return fmt.Errorf("images: write %s: %w", path, err)
	}
	return nil
}
