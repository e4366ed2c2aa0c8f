package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// ArchiveRefs are the image references an OCI image layout or
// docker-archive tarball names, as containerd's importer names them: an OCI
// index entry's AnnotationImageName, a docker-archive's RepoTags made
// whole ("nginx:1.27" is "docker.io/library/nginx:1.27"). Only the
// tarball's headers and its index are read.
func ArchiveRefs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var refs []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "index.json":
			var index v1.IndexManifest
			if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&index); err != nil {
				return nil, fmt.Errorf("%s: index.json: %w", path, err)
			}
			for _, d := range index.Manifests {
				if r := d.Annotations[AnnotationImageName]; r != "" {
					refs = append(refs, containerdRef(r))
				}
			}
		case "manifest.json":
			var manifest []struct{ RepoTags []string }
			if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&manifest); err != nil {
				return nil, fmt.Errorf("%s: manifest.json: %w", path, err)
			}
			for _, m := range manifest {
				for _, r := range m.RepoTags {
					refs = append(refs, containerdRef(r))
				}
			}
		}
	}
	sort.Strings(refs)
	return slices.Compact(refs), nil
}

// containerdRef is ref whole, as containerd names images
// ("docker.io/library/nginx:latest"); ref itself when it does not parse.
func containerdRef(ref string) string {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return ref
	}
	whole := containerdHost(r.Context().RegistryStr()) + "/" + r.Context().RepositoryStr()
	if t, ok := r.(name.Tag); ok {
		return whole + ":" + t.TagStr()
	}
	return whole + "@" + r.Identifier()
}
