package agent

import (
	"os"
	"path/filepath"
)

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
