package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The tests read back what Build writes with readArchive.

// taggedImage is one image of an archive with one of its references.
type taggedImage struct {
	ref name.Tag
	img v1.Image
}

// readArchive loads every image reference of an OCI layout tarball, as
// written by Build, into memory. References come from AnnotationImageName.
func readArchive(path string) ([]taggedImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		blobs[strings.TrimPrefix(hdr.Name, "./")] = b
	}
	var index v1.IndexManifest
	raw, ok := blobs["index.json"]
	if !ok {
		return nil, fmt.Errorf("%s: no index.json: not an OCI image layout", path)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", path, err)
	}
	var out []taggedImage
	for _, d := range index.Manifests {
		ref := d.Annotations[AnnotationImageName]
		if ref == "" {
			continue
		}
		tag, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		core := &archiveImage{blobs: blobs, desc: d}
		if core.manifest, err = core.blob(d.Digest); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, ref, err)
		}
		img, err := partial.CompressedToImage(core)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, ref, err)
		}
		out = append(out, taggedImage{ref: tag, img: img})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no image carries the %s annotation", path, AnnotationImageName)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ref.Name() < out[j].ref.Name() })
	return out, nil
}

// archiveImage is partial.CompressedImageCore over blobs read from an
// archive.
type archiveImage struct {
	blobs    map[string][]byte // by path inside the archive
	desc     v1.Descriptor
	manifest []byte
}

var _ partial.CompressedImageCore = (*archiveImage)(nil)

func (a *archiveImage) blob(h v1.Hash) ([]byte, error) {
	b, ok := a.blobs["blobs/"+h.Algorithm+"/"+h.Hex]
	if !ok {
		return nil, fmt.Errorf("blob %s missing", h)
	}
	return b, nil
}

func (a *archiveImage) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *archiveImage) MediaType() (types.MediaType, error) { return a.desc.MediaType, nil }

func (a *archiveImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.manifest))
	if err != nil {
		return nil, err
	}
	return a.blob(m.Config.Digest)
}

func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.manifest))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			b, err := a.blob(h)
			if err != nil {
				return nil, err
			}
			return &archiveLayer{desc: l, data: b}, nil
		}
	}
	if m.Config.Digest == h {
		b, err := a.blob(h)
		if err != nil {
			return nil, err
		}
		return &archiveLayer{desc: m.Config, data: b}, nil
	}
	return nil, errors.New("no layer " + h.String())
}

// archiveLayer is partial.CompressedLayer over one blob.
type archiveLayer struct {
	desc v1.Descriptor
	data []byte
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
