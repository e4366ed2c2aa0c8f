// Package builtin holds the images a node needs before any image directory
// or registry: the pause image (every pod's sandbox) and busybox (the
// local-path provisioner's cleanup pods), embedded in the binary, so that a
// lone skiff copied to a machine joins it as a node. `make build` copies
// them from images/out into files/ before building.
package builtin

import (
	"bytes"
	"embed"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed all:files
var files embed.FS

// Write writes each embedded tarball into dir, unless a file of the same
// content is there already, and returns their paths.
func Write(dir string) ([]string, error) {
	entries, err := fs.ReadDir(files, "files")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		data, err := files.ReadFile("files/" + e.Name())
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, e.Name())
		if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, data) {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				return nil, err
			}
		}
		paths = append(paths, path)
	}
	return paths, nil
}
