package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A node's start removes other nodes' dangling log links and keeps the
// rest; its teardown removes its own links.
func TestRemoveLogLinks(t *testing.T) {
	root := t.TempDir()
	dir, own, other := filepath.Join(root, "containers"), filepath.Join(root, "own", "pod-logs"), filepath.Join(root, "other", "pod-logs")
	for _, d := range []string{dir, own, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, target string, create bool) {
		if create {
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("own-live.log", filepath.Join(own, "a.log"), true)
	link("own-gone.log", filepath.Join(own, "b.log"), false) // the kubelet's to judge (a log being rotated)
	link("other-live.log", filepath.Join(other, "c.log"), true)
	link("other-gone.log", filepath.Join(root, "deleted", "pod-logs", "d.log"), false)
	if err := os.WriteFile(filepath.Join(dir, "plain.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		entries, _ := os.ReadDir(dir)
		var n []string
		for _, e := range entries {
			n = append(n, e.Name())
		}
		return n
	}

	removeLogLinks(dir, own, false)
	if got, want := names(), []string{"other-live.log", "own-gone.log", "own-live.log", "plain.log"}; !slices.Equal(got, want) {
		t.Fatalf("after start: %v, want %v", got, want)
	}
	removeLogLinks(dir, own+"/", true)
	if got, want := names(), []string{"other-live.log", "plain.log"}; !slices.Equal(got, want) {
		t.Fatalf("after teardown: %v, want %v", got, want)
	}
}
