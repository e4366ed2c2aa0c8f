package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FindProgram finds one of the node's runtime programs (containerd, its
// shim, ctr): beside the running skiff binary first, where `make build`
// puts the containerd it builds (bin/), then on $PATH.
func FindProgram(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// containerdVersion reads the version from `containerd --version` output:
// "containerd github.com/containerd/containerd/v2 v2.4.2" (a build from
// the module) or "containerd github.com/containerd/containerd 1.6.20~ds1
// 1.6.20~ds1-1+deb12u3" (Debian's).
func containerdVersion(out string) (major, minor int, version string, err error) {
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "containerd" {
		return 0, 0, "", fmt.Errorf("unexpected `containerd --version` output %q", strings.TrimSpace(out))
	}
	version = strings.TrimPrefix(f[2], "v")
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil {
		return 0, 0, "", fmt.Errorf("unexpected containerd version %q", f[2])
	}
	return major, minor, version, nil
}
