package node

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The first start of a fresh server: the kubelet starts with its client
// certificate, which the agent's TLS bootstrap step obtained before it
// (left to the kubelet, it bootstraps in the background and drops every
// connection it opened meanwhile, failing requests and watches), and a
// dangling link in /var/log/containers left by another node is removed
// before the kubelet starts (which would ask its runtime about the link's
// container and log an error for it).
func TestFirstStartLog(t *testing.T) {
	log := string(the.firstStart)
	cert := strings.Index(log, `msg="the kubelet has its client certificate"`)
	kubelet := strings.Index(log, `msg="component started" component=skiff-agent component=kubelet`)
	if cert < 0 || kubelet < 0 || cert > kubelet {
		t.Errorf("want the kubelet's client certificate (at %d) before the kubelet starts (at %d) in the first start's log:\n%s", cert, kubelet, log)
	}
	if _, err := os.Lstat(the.danglingLogLink); !os.IsNotExist(err) {
		t.Errorf("the dangling log link %s is still there (%v)", the.danglingLogLink, err)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "ContainerStatus from runtime service failed") {
			t.Errorf("the first start asked the runtime about a container it cannot know: %s", l)
		}
	}
}

// plantDanglingLogLink makes a link in /var/log/containers, named as the
// kubelet names them (pod_namespace_container-ID.log), to a log under a data
// dir that does not exist.
func plantDanglingLogLink() (string, error) {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	dir := "/var/log/containers"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := "gone_default_app-" + hex.EncodeToString(id) + ".log"
	target := filepath.Join(os.TempDir(), "skiff-e2e-deleted-"+hex.EncodeToString(id[:4]), "pod-logs", "default_gone_uid", "app", "0.log")
	link := filepath.Join(dir, name)
	return link, os.Symlink(target, link)
}
