package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images Build writes. Each is tagged "latest" and Config.Version.
const (
	Pause    = "localhost/skiff/pause"
	Testhost = "localhost/skiff/testhost"
	Busybox  = "localhost/skiff/busybox"
	// EchoBasic is the Gateway API conformance suite's backend, built from
	// sigs.k8s.io/gateway-api/conformance/echo-basic at go.mod's version.
	EchoBasic = "localhost/skiff/echo-basic"
)

// LatestTag is the tag every image carries besides its version.
const LatestTag = "latest"

// Path is the PATH set in every image's config.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultBusybox is where Debian's busybox-static installs its binary.
const DefaultBusybox = "/usr/bin/busybox"

// Config names Build's inputs.
type Config struct {
	// OutDir receives pause.tar, testhost.tar and busybox.tar; it is
	// created if missing. Required.
	OutDir string
	// Version is the tag each image carries besides "latest", e.g.
	// "v0.1.0". Required.
	Version string
	// PauseBinary and TesthostBinary are static executables built from
	// images/pause and images/testhost. Required.
	PauseBinary    string
	TesthostBinary string
	// EchoBasicBinary, when set, is a static echo-basic executable, and
	// OutDir receives echo-basic.tar too.
	EchoBasicBinary string
	// BusyboxBinary is a static busybox. Default DefaultBusybox.
	BusyboxBinary string
	// Applets are the busybox applet paths to install as symlinks, relative
	// to / as `busybox --list-full` prints them ("bin/sh"). Nil means ask
	// BusyboxBinary with --list-full.
	Applets []string
	// Arch is the GOARCH the binaries were built for, written to the image
	// configs. Default runtime.GOARCH.
	Arch string
}

// withDefaults returns cfg with defaults applied, or an error naming the
// first missing field.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.OutDir == "":
		return cfg, errors.New("images: Config.OutDir is required")
	case cfg.Version == "":
		return cfg, errors.New("images: Config.Version is required")
	case cfg.PauseBinary == "":
		return cfg, errors.New("images: Config.PauseBinary is required")
	case cfg.TesthostBinary == "":
		return cfg, errors.New("images: Config.TesthostBinary is required")
	}
	if _, err := name.NewTag(Pause+":"+cfg.Version, name.StrictValidation); err != nil {
		return cfg, fmt.Errorf("images: Config.Version %q is not a valid tag: %w", cfg.Version, err)
	}
	if cfg.BusyboxBinary == "" {
		cfg.BusyboxBinary = DefaultBusybox
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	return cfg, nil
}

// Build writes OutDir/pause.tar, OutDir/testhost.tar and OutDir/busybox.tar
// and returns their paths. Each is an OCI image layout in a tar that holds
// one single-layer linux image under two names, NAME:latest and
// NAME:Version. Build runs BusyboxBinary only when Applets is nil.
func Build(ctx context.Context, cfg Config) ([]string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Applets == nil {
		if cfg.Applets, err = listApplets(ctx, cfg.BusyboxBinary); err != nil {
			return nil, err
		}
	}
	specs, err := specs(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	var paths []string
	for _, s := range specs {
		img, err := s.image(cfg.Arch)
		if err != nil {
			return nil, fmt.Errorf("images: build %s: %w", s.name, err)
		}
		path := filepath.Join(cfg.OutDir, s.file)
		refs := []string{s.name + ":" + LatestTag, s.name + ":" + cfg.Version}
		if err := writeArchive(path, img, refs); err != nil {
			return nil, fmt.Errorf("images: write %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// spec describes one image: its files and its config.
type spec struct {
	name       string // repository, e.g. localhost/skiff/pause
	file       string // archive file name in OutDir
	files      []file
	entrypoint []string
	cmd        []string
	user       string
}

// specs lays out the three images from cfg's binaries. It reads no files;
// the layer reads them when written.
func specs(cfg Config) ([]spec, error) {
	busybox, err := busyboxFiles(cfg.BusyboxBinary, cfg.Applets)
	if err != nil {
		return nil, err
	}
	var echo []spec
	if cfg.EchoBasicBinary != "" {
		echo = append(echo, spec{
			name:       EchoBasic,
			file:       "echo-basic.tar",
			files:      []file{{path: "echo-basic", mode: 0o755, src: cfg.EchoBasicBinary}},
			entrypoint: []string{"/echo-basic"},
		})
	}
	return append([]spec{
		{
			name:       Pause,
			file:       "pause.tar",
			files:      []file{{path: "pause", mode: 0o755, src: cfg.PauseBinary}},
			entrypoint: []string{"/pause"},
		},
		{
			name:       Testhost,
			file:       "testhost.tar",
			files:      append(busybox, file{path: "testhost", mode: 0o755, src: cfg.TesthostBinary}),
			entrypoint: []string{"/testhost"},
			cmd:        []string{"netexec"},
		},
		{
			name:  Busybox,
			file:  "busybox.tar",
			files: busybox,
			cmd:   []string{"sh"},
		},
	}, echo...), nil
}

// image assembles s as a single-layer OCI image for linux/arch.
func (s spec) image(arch string) (v1.Image, error) {
	layer, err := newLayer(s.files)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Config = v1.Config{
		Env:        []string{"PATH=" + Path},
		Entrypoint: s.entrypoint,
		Cmd:        s.cmd,
		User:       s.user,
		WorkingDir: "/",
	}
	cf.Created = v1.Time{Time: epoch}
	cf.History = []v1.History{{Created: v1.Time{Time: epoch}, CreatedBy: "skiff internal/images", Comment: s.name}}
	return mutate.ConfigFile(img, cf)
}

// busyboxFiles is the busybox userland: /bin/busybox, one symlink per
// applet, and the few directories and files tools expect.
func busyboxFiles(binary string, applets []string) ([]file, error) {
	fs := []file{
		{path: "bin/busybox", mode: 0o755, src: binary},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		{path: "root", mode: 0o700, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
		{path: "var/tmp", mode: 0o1777, dir: true},
	}
	seen := map[string]bool{}
	for _, a := range applets {
		a = strings.TrimPrefix(strings.TrimSpace(a), "/")
		// Applets outside a bin directory (linuxrc) are of no use in a
		// container.
		if a == "" || a == "bin/busybox" || !strings.Contains(a, "/") || seen[a] {
			continue
		}
		if strings.Contains(a, "..") {
			return nil, fmt.Errorf("images: bad busybox applet path %q", a)
		}
		seen[a] = true
		fs = append(fs, file{path: a, link: "/bin/busybox"})
	}
	return fs, nil
}

// listApplets asks a busybox binary for its applet paths.
func listApplets(ctx context.Context, binary string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("images: %s --list-full: %w: %s", binary, err, stderr.String())
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	return applets, nil
}
