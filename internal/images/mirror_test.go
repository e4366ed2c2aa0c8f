package images

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// contentDir writes the blobs of the archives' images into a directory laid
// out as containerd's content store, and returns it with the images'
// references (as containerd names them) and manifest digests.
func contentDir(t *testing.T, paths []string) (string, map[string]string, []taggedImage) {
	t.Helper()
	dir := t.TempDir()
	put := func(d v1.Hash, b []byte) {
		p := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	refs := map[string]string{}
	var all []taggedImage
	for _, path := range paths {
		imgs, err := readArchive(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range imgs {
			all = append(all, ti)
			d, _ := ti.img.Digest()
			m, _ := ti.img.RawManifest()
			put(d, m)
			cd, _ := ti.img.ConfigName()
			c, _ := ti.img.RawConfigFile()
			put(cd, c)
			layers, _ := ti.img.Layers()
			for _, l := range layers {
				ld, _ := l.Digest()
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				put(ld, b)
			}
			refs[containerdRef(ti.ref.Name())] = d.String()
		}
	}
	return dir, refs, all
}

func startMirror(t *testing.T, store Store) *Mirror {
	t.Helper()
	m, err := NewMirror("127.0.0.1:0", store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return m
}

// TestMirrorServesStore: every listed image pulls through the mirror with a
// real registry client, its digest and blobs intact; what is not listed, or
// not referenced by what is, is not served.
func TestMirrorServesStore(t *testing.T) {
	paths := mustBuild(t, fakeInputs(t))
	dir, refs, imgs := contentDir(t, paths)
	listed := map[string]string{}
	for k, v := range refs {
		listed[k] = v
	}
	m := startMirror(t, ContentStore{Dir: dir, List: func(context.Context) (map[string]string, error) { return listed, nil }})
	ctx := context.Background()

	for _, ti := range imgs {
		want, _ := ti.img.Digest()
		// containerd maps localhost/skiff/x:tag to repository skiff/x on
		// the mirror endpoint.
		ref, err := name.NewTag(m.Addr()+"/"+ti.ref.RepositoryStr()+":"+ti.ref.TagStr(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if got, _ := img.Digest(); got != want {
			t.Errorf("%s: digest %s, want %s", ref, got, want)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("%s: layer: %v", ref, err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("%s: layer: %v", ref, err)
			}
			rc.Close()
		}
		if _, err := img.ConfigFile(); err != nil {
			t.Fatalf("%s: config: %v", ref, err)
		}
	}

	// What containerd asks first: HEAD by tag, with the host in ns.
	first := imgs[0]
	url := m.URL() + "/v2/" + first.ref.RepositoryStr() + "/manifests/" + first.ref.TagStr() + "?ns=localhost"
	resp, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want, _ := first.img.Digest()
	mt, _ := first.img.MediaType()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != want.String() || resp.Header.Get("Content-Type") != string(mt) {
		t.Errorf("HEAD %s: %d, digest %q, type %q; want 200, %s, %s", url, resp.StatusCode,
			resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), want, mt)
	}

	status := func(method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, m.URL()+path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A blob in the store that no listed image references.
	stray := filepath.Join(dir, "blobs", "sha256", strings.Repeat("ab", 32))
	if err := os.WriteFile(stray, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := first.ref.RepositoryStr()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v2/", 200},
		{"GET", "/v2/" + repo + "/manifests/no-such-tag", 404},
		{"GET", "/v2/" + repo + "/manifests/" + first.ref.TagStr() + "?ns=registry.k8s.io", 404}, // another registry's
		{"GET", "/v2/" + repo + "/blobs/sha256:" + strings.Repeat("ab", 32), 404},
		{"GET", "/v2/" + repo + "/blobs/not-a-digest", 404},
		{"GET", "/v2/" + repo + "/manifests/../../../etc/passwd", 404},
		{"PUT", "/v2/" + repo + "/manifests/latest", 405},
		{"GET", "/other", 404},
	} {
		if got := status(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}

	// Unlisted (a pulled image, not an imported one): no longer served,
	// neither by tag nor its blobs by digest once the listing is renewed.
	delete(listed, containerdRef(first.ref.Name()))
	for k, v := range listed {
		if v == want.String() {
			delete(listed, k) // its other tags
		}
	}
	if got := status("GET", "/v2/"+repo+"/manifests/"+first.ref.TagStr()); got != 404 {
		t.Errorf("an unlisted image's manifest: %d, want 404", got)
	}
}

func TestMirrorCloseWithoutRun(t *testing.T) {
	m, err := NewMirror("127.0.0.1:0", ContentStore{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

func TestArchiveRefs(t *testing.T) {
	paths := mustBuild(t, fakeInputs(t))
	refs, err := ArchiveRefs(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	imgs, _ := readArchive(paths[0])
	if len(refs) != len(imgs) {
		t.Fatalf("ArchiveRefs(%s) = %q, want the %d references of its index", paths[0], refs, len(imgs))
	}
	for i, ti := range imgs {
		if refs[i] != ti.ref.Name() {
			t.Errorf("ref %d: %q, want %q", i, refs[i], ti.ref.Name())
		}
	}
	for in, want := range map[string]string{
		"nginx:1.27":                 "docker.io/library/nginx:1.27",
		"registry.k8s.io/pause:3.10": "registry.k8s.io/pause:3.10",
		"localhost/skiff/pause:v1":   "localhost/skiff/pause:v1",
		"example.com:5000/a/b:c":     "example.com:5000/a/b:c",
		"user/app":                   "docker.io/user/app:latest",
	} {
		if got := containerdRef(in); got != want {
			t.Errorf("containerdRef(%q) = %q, want %q", in, got, want)
		}
	}
	// A docker-archive (docker save) names its images in manifest.json.
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(t.TempDir(), "saved.tar")
	tags := map[name.Tag]v1.Image{}
	for _, r := range []string{"nginx:1.27", "registry.k8s.io/pause:3.10"} {
		tag, _ := name.NewTag(r)
		tags[tag] = img
	}
	if err := tarball.MultiWriteToFile(docker, tags); err != nil {
		t.Fatal(err)
	}
	if got, err := ArchiveRefs(docker); err != nil || strings.Join(got, " ") != "docker.io/library/nginx:1.27 registry.k8s.io/pause:3.10" {
		t.Errorf("ArchiveRefs(docker-archive) = %q, %v", got, err)
	}
	if _, err := ArchiveRefs(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("ArchiveRefs of a missing file succeeded")
	}
}
