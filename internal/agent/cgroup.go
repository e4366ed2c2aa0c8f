package agent

import (
	"os"
	"path/filepath"
)

// nodeNameFile, in the agent's data dir, names the node it last ran.
const nodeNameFile = "node-name"

// removeCgroupRoot removes the node's cgroup tree (empty once its pods are
// gone), deepest first, in every hierarchy.
func removeCgroupRoot(root string) {
	const base = "/sys/fs/cgroup"
	dirs := []string{filepath.Join(base, root)}
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			dirs = append(dirs, filepath.Join(base, e.Name(), root))
		}
	}
	for _, top := range dirs {
		var all []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			_ = os.Remove(all[i])
		}
	}
}

// ensureCgroupRoot creates the agent's cgroup parent in every hierarchy, so
// several agents on one machine (the multi-node tests) each manage their own
// kubepods tree and never see each other's pods as strays.
func ensureCgroupRoot(root string) error {
	const base = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err == nil {
		// cgroup v2: one unified hierarchy.
		return os.MkdirAll(filepath.Join(base, root), 0o755)
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if fi, err := os.Lstat(dir); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, root), 0o755); err != nil {
			return err
		}
	}
	return nil
}
