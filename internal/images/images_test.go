package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fakeInputs writes stand-ins for the binaries; Build only copies bytes.
func fakeInputs(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return Config{
		OutDir:         filepath.Join(dir, "out"),
		Version:        "v1.2.3",
		PauseBinary:    write("pause", "pause-binary"),
		TesthostBinary: write("testhost", "testhost-binary"),
		BusyboxBinary:  write("busybox", "busybox-binary"),
		Applets:        []string{"bin/sh", "usr/bin/wget", "bin/tar", "linuxrc", "bin/sh"},
		Arch:           "amd64",
	}
}

func TestConfigRequiredFields(t *testing.T) {
	for _, tc := range []struct {
		field string
		clear func(*Config)
	}{
		{"OutDir", func(c *Config) { c.OutDir = "" }},
		{"Version", func(c *Config) { c.Version = "" }},
		{"PauseBinary", func(c *Config) { c.PauseBinary = "" }},
		{"TesthostBinary", func(c *Config) { c.TesthostBinary = "" }},
		{"Version", func(c *Config) { c.Version = "1.0+skiff" }},
	} {
		cfg := fakeInputs(t)
		tc.clear(&cfg)
		_, err := Build(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Build without valid %s: err = %v, want it to name the field", tc.field, err)
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	cfg := fakeInputs(t)
	first := readAll(t, mustBuild(t, cfg))
	cfg.OutDir = filepath.Join(t.TempDir(), "again")
	second := readAll(t, mustBuild(t, cfg))
	for name, b := range first {
		if !bytes.Equal(b, second[name]) {
			t.Errorf("%s differs between two builds of the same inputs", name)
		}
	}
}

func mustBuild(t *testing.T, cfg Config) []string {
	t.Helper()
	paths, err := Build(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pause.tar", "testhost.tar", "busybox.tar"}
	if len(paths) != len(want) {
		t.Fatalf("Build wrote %v, want %v", paths, want)
	}
	for i, p := range paths {
		if filepath.Base(p) != want[i] || filepath.Dir(p) != cfg.OutDir {
			t.Errorf("Build wrote %s, want %s in %s", p, want[i], cfg.OutDir)
		}
	}
	return paths
}

func readAll(t *testing.T, paths []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// entry is what a test checks about one file of a layer.
type entry struct {
	typ  byte
	mode int64
	link string
	data string
}

func TestBuildImages(t *testing.T) {
	cfg := fakeInputs(t)
	paths := mustBuild(t, cfg)
	busybox := map[string]entry{
		"bin/busybox":  {typ: tar.TypeReg, mode: 0o755, data: "busybox-binary"},
		"bin/sh":       {typ: tar.TypeSymlink, link: "/bin/busybox"},
		"bin/tar":      {typ: tar.TypeSymlink, link: "/bin/busybox"},
		"usr/bin/wget": {typ: tar.TypeSymlink, link: "/bin/busybox"},
		"usr/bin/":     {typ: tar.TypeDir, mode: 0o755},
		"tmp/":         {typ: tar.TypeDir, mode: 0o1777},
		"etc/passwd":   {typ: tar.TypeReg, mode: 0o644},
	}
	for _, tc := range []struct {
		path       string
		name       string
		entrypoint []string
		cmd        []string
		files      map[string]entry
		absent     []string
	}{
		{
			path:       paths[0],
			name:       Pause,
			entrypoint: []string{"/pause"},
			files:      map[string]entry{"pause": {typ: tar.TypeReg, mode: 0o755, data: "pause-binary"}},
			absent:     []string{"bin/sh", "linuxrc"},
		},
		{
			path:       paths[1],
			name:       Testhost,
			entrypoint: []string{"/testhost"},
			cmd:        []string{"netexec"},
			files:      with(busybox, "testhost", entry{typ: tar.TypeReg, mode: 0o755, data: "testhost-binary"}),
			absent:     []string{"linuxrc", "pause"},
		},
		{
			path:   paths[2],
			name:   Busybox,
			cmd:    []string{"sh"},
			files:  busybox,
			absent: []string{"linuxrc", "testhost"},
		},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			imgs, err := readArchive(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, ti := range imgs {
				refs = append(refs, ti.ref.Name())
			}
			wantRefs := []string{tc.name + ":latest", tc.name + ":v1.2.3"}
			if strings.Join(refs, " ") != strings.Join(wantRefs, " ") {
				t.Errorf("refs %v, want %v", refs, wantRefs)
			}
			img := imgs[0].img
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			c := cf.Config
			if strings.Join(c.Entrypoint, " ") != strings.Join(tc.entrypoint, " ") || strings.Join(c.Cmd, " ") != strings.Join(tc.cmd, " ") {
				t.Errorf("entrypoint %q cmd %q, want %q %q", c.Entrypoint, c.Cmd, tc.entrypoint, tc.cmd)
			}
			if c.WorkingDir != "/" || len(c.Env) != 1 || c.Env[0] != "PATH="+Path {
				t.Errorf("workdir %q env %q, want / and PATH", c.WorkingDir, c.Env)
			}
			got := layerEntries(t, img)
			for p, want := range tc.files {
				g, ok := got[p]
				if !ok {
					t.Errorf("%s missing", p)
					continue
				}
				if want.data == "" {
					g.data = ""
				}
				if g != want {
					t.Errorf("%s = %+v, want %+v", p, g, want)
				}
			}
			for _, p := range tc.absent {
				if _, ok := got[p]; ok {
					t.Errorf("%s present, want absent", p)
				}
			}
		})
	}
}

func with(m map[string]entry, k string, v entry) map[string]entry {
	out := map[string]entry{k: v}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// layerEntries reads the image's single layer, checking that every entry
// is owned by root with mtime epoch and that entries come sorted.
func layerEntries(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]entry{}
	prev := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0 0 epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		if hdr.Name < prev {
			t.Errorf("%s after %s: entries not sorted", hdr.Name, prev)
		}
		prev = hdr.Name
		e := entry{typ: hdr.Typeflag, link: hdr.Linkname}
		if hdr.Typeflag != tar.TypeSymlink {
			e.mode = hdr.Mode
		}
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			e.data = string(b)
		}
		out[hdr.Name] = e
	}
}

func TestLayerTarRejectsBadPaths(t *testing.T) {
	for _, fs := range [][]file{
		{{path: "/abs"}},
		{{path: "../up"}},
		{{path: "."}},
		{{path: "a"}, {path: "a/"}},
	} {
		if _, err := layerTar(fs); err == nil {
			t.Errorf("layerTar(%+v) succeeded, want an error", fs)
		}
	}
}

func TestListApplets(t *testing.T) {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("needs %s (Debian busybox-static)", DefaultBusybox)
	}
	applets, err := listApplets(context.Background(), DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range applets {
		have[a] = true
	}
	// kubectl cp needs tar; tests rely on the rest.
	for _, want := range []string{"bin/sh", "bin/tar", "bin/ls", "bin/cat", "usr/bin/wget", "usr/bin/nc", "usr/bin/timeout"} {
		if !have[want] {
			t.Errorf("busybox has no %s applet", want)
		}
	}
}
