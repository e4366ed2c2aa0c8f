package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerdConfig(t *testing.T) {
	dir := t.TempDir()
	c := &containerd{dir: dir, cniConfDir: dir + "/net.d", cniBinDir: "/usr/lib/cni", ipamDir: dir + "/ipam", mirror: "http://127.0.0.1:5000"}
	path, err := c.writeConfig()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	cfg := string(data)
	for _, want := range []string{
		"version = 3",
		`restrict_oom_score_adj = true`, // required on these VMs
		`sandbox = "localhost/skiff/pause:latest"`,
		`address = "` + dir + `/containerd.sock"`,
		`bin_dirs = ["/usr/lib/cni"]`,
		`conf_template = "` + dir + `/cni-template.conflist"`,
		// The CRI's pulls and the transfer service's read the same hosts.
		"[plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = \"" + dir + "/certs.d\"",
		"[plugins.\"io.containerd.transfer.v1.local\"]\n  config_path = \"" + dir + "/certs.d\"",
		`disabled_plugins = ["io.containerd.nri.v1.nri"]`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, cfg)
		}
	}
	// Imported images of every registry are pulled from the mirror first.
	hosts, err := os.ReadFile(dir + "/certs.d/_default/hosts.toml")
	if want := "[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"; err != nil || string(hosts) != want {
		t.Errorf("certs.d/_default/hosts.toml = %q, %v; want %q", hosts, err, want)
	}
	// Without a mirror, no host is configured (a stale file goes).
	c.mirror = ""
	if _, err := c.writeConfig(); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir + "/certs.d"); err != nil || len(entries) != 0 {
		t.Errorf("certs.d without a mirror: %v, %v; want an empty directory", entries, err)
	}
	tmpl, _ := os.ReadFile(dir + "/cni-template.conflist")
	for _, want := range []string{`"bridge": "skiff0"`, `"dataDir": "` + dir + `/ipam"`, `{{range $i, $r := .PodCIDRRanges}}`, `"type": "portmap"`, `"ipMasq": false`} {
		if !strings.Contains(string(tmpl), want) {
			t.Errorf("CNI template lacks %q", want)
		}
	}
}

func TestImportedList(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	if got, err := readImported(socket); err != nil || len(got) != 0 {
		t.Fatalf("no list yet: %v, %v", got, err)
	}
	if err := markImported(socket, []string{"localhost/skiff/pause:latest", "docker.io/library/nginx:1.27"}); err != nil {
		t.Fatal(err)
	}
	if err := markImported(socket, []string{"docker.io/library/nginx:1.27", "registry.k8s.io/pause:3.10"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(importedList(socket)); strings.Count(string(data), "nginx") != 1 {
		t.Errorf("a reference listed twice:\n%s", data)
	}
	if err := unmarkImported(socket, []string{"docker.io/library/nginx:1.27"}); err != nil {
		t.Fatal(err)
	}
	got, err := readImported(socket)
	if err != nil || len(got) != 2 || !got["localhost/skiff/pause:latest"] || !got["registry.k8s.io/pause:3.10"] || got["docker.io/library/nginx:1.27"] {
		t.Errorf("after unmark: %v, %v", got, err)
	}
}
