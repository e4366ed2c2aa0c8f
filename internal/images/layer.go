package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every file in every layer, so layers
// depend only on their contents.
var epoch = time.Unix(0, 0).UTC()

// file is one entry of a layer: a regular file (data, or the contents of
// src on the build host), a symlink (link) or a directory (dir).
type file struct {
	path string // relative to /, without a leading slash
	mode int64  // permission bits; ignored for symlinks
	data []byte
	src  string
	link string
	dir  bool
}

// layerTar renders files as an uncompressed layer tar, owned by root, with
// parent directories added (mode 0755), entries sorted by path and every
// time set to epoch.
func layerTar(files []file) ([]byte, error) {
	byPath := map[string]file{}
	for _, f := range files {
		p := path.Clean(f.path)
		if path.IsAbs(p) || p == "." || p == ".." || len(p) > 2 && p[:3] == "../" {
			return nil, fmt.Errorf("bad layer path %q", f.path)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("duplicate layer path %q", p)
		}
		f.path = p
		byPath[p] = f
	}
	for p := range byPath {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = file{path: d, mode: 0o755, dir: true}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := byPath[p]
		hdr := &tar.Header{Name: p, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX}
		var data []byte
		switch {
		case f.dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case f.link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.link
			hdr.Mode = 0o777
		default:
			hdr.Typeflag = tar.TypeReg
			data = f.data
			if f.src != "" {
				var err error
				if data, err = os.ReadFile(f.src); err != nil {
					return nil, err
				}
			}
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newLayer builds a gzip-compressed OCI layer from files.
func newLayer(files []file) (v1.Layer, error) {
	b, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
