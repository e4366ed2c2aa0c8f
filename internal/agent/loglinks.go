package agent

import (
	"os"
	"path/filepath"
	"strings"
)

// legacyLogDir is where the kubelet links each container's log under the
// name log shippers read (upstream's /var/log/containers): one directory for
// every kubelet on the host, whatever its data dir.
const legacyLogDir = "/var/log/containers"

// removeLogLinks removes links in dir to container logs. With own, those
// pointing into podLogsDir: the node is torn down, its logs go with its data
// dir. Without, the links whose log is gone and which point elsewhere: left
// by a node whose data dir was deleted without teardown. The kubelet removes
// those too when it starts, but first asks its own runtime about each
// link's container, which it cannot know, and logs an error per link.
func removeLogLinks(dir, podLogsDir string, own bool) {
	links, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	prefix := filepath.Clean(podLogsDir) + string(filepath.Separator)
	for _, link := range links {
		target, err := os.Readlink(link)
		if err != nil {
			continue // not a link
		}
		ours := strings.HasPrefix(filepath.Clean(target), prefix)
		if own && ours {
			_ = os.Remove(link)
			continue
		}
		if !own && !ours {
			if _, err := os.Stat(link); os.IsNotExist(err) {
				_ = os.Remove(link)
			}
		}
	}
}
