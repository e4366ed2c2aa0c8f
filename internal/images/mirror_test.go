package images

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestMirrorServesArchives(t *testing.T) {
	paths := mustBuild(t, fakeInputs(t))
	m, err := NewMirror(context.Background(), "127.0.0.1:0", paths)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Registries(); len(got) != 1 || got[0] != "localhost" {
		t.Errorf("Registries() = %q, want [localhost]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	for _, path := range paths {
		imgs, err := readArchive(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range imgs {
			want, err := ti.img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			// containerd maps localhost/skiff/x:tag to repository skiff/x
			// on the mirror endpoint.
			ref, err := name.NewTag(m.Addr()+"/"+ti.ref.RepositoryStr()+":"+ti.ref.TagStr(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref, remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			got, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: digest %s, want %s (as in %s)", ref, got, want, path)
			}
			// Pull every blob too, as containerd would.
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("%s: layer: %v", ref, err)
				}
				rc.Close()
			}
			if _, err := img.ConfigFile(); err != nil {
				t.Fatalf("%s: config: %v", ref, err)
			}
		}
	}
}

func TestMirrorRejectsBadArchive(t *testing.T) {
	if _, err := NewMirror(context.Background(), "127.0.0.1:0", []string{"/does/not/exist.tar"}); err == nil {
		t.Error("NewMirror with a missing archive succeeded")
	}
}

func TestMirrorCloseWithoutRun(t *testing.T) {
	m, err := NewMirror(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
