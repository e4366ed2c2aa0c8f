package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the index entries of an archive. containerd's importer
// names the image after AnnotationImageName; OCI tools read the tag from
// AnnotationRefName.
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = "org.opencontainers.image.ref.name"
)

// writeArchive writes img as an OCI image layout tarball at path, listed
// once per reference in refs. The file is written next to path and renamed
// into place, so readers never see half an archive.
func writeArchive(path string, img v1.Image, refs []string) error {
	var buf bytes.Buffer
	if err := archive(&buf, img, refs); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// archive renders img and refs as an OCI image layout tar: oci-layout,
// index.json and blobs/sha256/*, in that order, all with mtime epoch.
func archive(w io.Writer, img v1.Image, refs []string) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, r := range refs {
		tag, err := name.NewTag(r, name.StrictValidation)
		if err != nil {
			return err
		}
		index.Manifests = append(index.Manifests, v1.Descriptor{
			MediaType: mediaType,
			Size:      int64(len(manifest)),
			Digest:    digest,
			Annotations: map[string]string{
				AnnotationImageName: tag.Name(),
				AnnotationRefName:   tag.TagStr(),
			},
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		})
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	put := func(name string, r io.Reader, size int64) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
		}
		return err
	}
	putBytes := func(name string, b []byte) error { return put(name, bytes.NewReader(b), int64(len(b))) }
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

	if err := putBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := putBytes("index.json", indexJSON); err != nil {
		return err
	}
	if err := putBytes(blob(digest), manifest); err != nil {
		return err
	}
	if err := putBytes(blob(configName), config); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = put(blob(d), rc, size)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

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
