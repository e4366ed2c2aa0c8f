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
		`restrict_oom_score_adj = true`, // required on these VMs
		`sandbox_image = "localhost/skiff/pause:latest"`,
		`address = "` + dir + `/containerd.sock"`,
		`bin_dir = "/usr/lib/cni"`,
		`conf_template = "` + dir + `/cni-template.conflist"`,
		`[plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost"]`,
		`endpoint = ["http://127.0.0.1:5000"]`,
		// Imported images of every registry are pulled from it too.
		`[plugins."io.containerd.grpc.v1.cri".registry.mirrors."*"]` + "\n" + `    endpoint = ["http://127.0.0.1:5000"]`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("containerd config lacks %q", want)
		}
	}
	if strings.Count(cfg, `mirrors."localhost"`) != 1 {
		t.Errorf("the localhost mirror configured %d times, want once:\n%s", strings.Count(cfg, `mirrors."localhost"`), cfg)
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
