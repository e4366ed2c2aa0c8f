package builtin

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrite writes what the binary embeds, twice: the second time finds the
// same files and leaves them as they are.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	paths, err := Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if filepath.Ext(p) != ".tar" {
			t.Errorf("wrote %s, want only tarballs", p)
		}
	}
	if len(paths) == 0 {
		t.Skip("no tarballs embedded: build with `make build`, which copies them in")
	}
	before, _ := os.Stat(paths[0])
	again, err := Write(dir)
	if err != nil || len(again) != len(paths) {
		t.Fatalf("second write: %v, %v", again, err)
	}
	after, _ := os.Stat(paths[0])
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged tarball was written again")
	}
}
