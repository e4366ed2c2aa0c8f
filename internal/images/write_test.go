package images

import (
	"archive/tar"
	"io"
	"path/filepath"
	"slices"
	"testing"
)

// TestWrite: an Image written under full references of other registries,
// with its user, entrypoint and a setuid file, reads back as written.
func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.tar")
	refs := []string{"registry.k8s.io/e2e-test-images/nonewprivs:1.4", "registry.k8s.io/e2e-test-images/nonewprivs:1.5"}
	err := Write(path, refs, Image{
		Files: []File{
			{Path: "usr/local/bin/nnp", Mode: 0o4755, Data: []byte("#!/bin/sh\n")},
			{Path: "bin/sh", Link: "/bin/busybox"},
			{Path: "var/lib/etcd", Mode: 0o700, Dir: true},
		},
		Entrypoint: []string{"/usr/local/bin/nnp"},
		User:       "1234",
	}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := readArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range imgs {
		got = append(got, im.ref.String())
	}
	if !slices.Equal(got, refs) {
		t.Fatalf("references %q, want %q", got, refs)
	}
	cf, err := imgs[0].img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "1234" || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/nnp"}) || cf.Architecture != "amd64" {
		t.Errorf("config user %q entrypoint %q arch %q", cf.Config.User, cf.Config.Entrypoint, cf.Architecture)
	}
	layers, err := imgs[0].img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[hdr.Name] = hdr.Mode
	}
	if modes["usr/local/bin/nnp"] != 0o4755 || modes["var/lib/etcd/"] != 0o700 {
		t.Errorf("layer modes %v, want nnp 0o4755 and var/lib/etcd 0o700", modes)
	}
	if err := Write(path, nil, Image{}, "amd64"); err == nil {
		t.Error("Write without a reference: no error")
	}
}
