// Command conformance assembles the container images the Kubernetes
// conformance suite's [Conformance] specs run, under their upstream names,
// from binaries built from the Kubernetes module (conformance/, `make
// conformance`) and from this build host's Debian packages, since no
// registry is reachable:
//
//	go run ./images/conformance -bin conformance/out/bin -k8s-dir DIR -out conformance/out/images
//
// writes one OCI image layout tarball per image to -out, for the node
// agent's --images-dir. What each stand-in is, and what it lacks against
// the upstream image, is in docs/conformance.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/skiffdev/skiff/internal/images"
)

// Registries of the upstream images (k8s.io/kubernetes
// test/utils/image/manifest.go).
const (
	e2eRegistry = "registry.k8s.io/e2e-test-images/"
	gcRegistry  = "registry.k8s.io/"
)

// debianTools are the build host's programs the agnhost stand-in carries
// (the upstream image adds them from Alpine: bind-tools, curl,
// netcat-openbsd, iproute2, bash, socat), by their path in the image, with
// the Debian package that installs each.
var debianTools = []tool{
	{"usr/bin/curl", "curl"},
	{"usr/bin/dig", "bind9-dnsutils"},
	{"usr/bin/nslookup", "bind9-dnsutils"},
	{"usr/bin/nc", "netcat-openbsd"}, // nc.openbsd on the host
	{"usr/bin/socat", "socat"},
	{"usr/bin/bash", "bash"},
	{"usr/sbin/ip", "iproute2"},
	{"usr/bin/getent", "libc-bin"},
}

// tool is a program of the build host and the Debian package of it.
type tool struct{ path, pkg string }

func main() {
	bin := flag.String("bin", "conformance/out/bin", "directory holding agnhost, nnp, sample-apiserver and etcd, built from the Kubernetes module, and busybox, built from its source")
	k8sDir := flag.String("k8s-dir", "", "the k8s.io/kubernetes module's source directory (for the kitten and nautilus pages); required")
	out := flag.String("out", "conformance/out/images", "directory for the image tarballs")
	goTool := flag.String("go", "go", "go command that compiles images/pause")
	flag.Parse()
	if *k8sDir == "" {
		fail(errors.New("-k8s-dir is required"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := build(ctx, *bin, *k8sDir, *out, *goTool); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "images/conformance:", err)
	os.Exit(1)
}

// image is one tarball to write: its references and contents.
type image struct {
	file string
	refs []string
	img  images.Image
}

func build(ctx context.Context, bin, k8sDir, out, goTool string) error {
	tmp, err := os.MkdirTemp("", "skiff-conformance-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pause := filepath.Join(tmp, "pause")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./images/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./images/pause: %w", err)
	}
	for _, b := range []string{"agnhost", "nnp", "sample-apiserver", "etcd", "busybox"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%w (build it with make conformance-build)", err)
		}
	}

	busyboxUserland, err := images.BusyboxFiles(ctx, filepath.Join(bin, "busybox"))
	if err != nil {
		return err
	}
	tools, err := hostTools(debianTools)
	if err != nil {
		return err
	}
	// /bin/sh is busybox's ash, as in upstream's images: the specs expect
	// its messages. (scripts/conformance.sh builds busybox from upstream's
	// source: Debian's drops environment variables whose names
	// are not identifiers, data-1, and runs its applets before the PATH's
	// programs, the Debian tools below.)
	userland := slices.Clone(busyboxUserland)
	// Every applet in /bin too, as upstream's busybox image has them
	// (specs run /bin/sysctl); Debian spreads them over four directories.
	for _, f := range busyboxUserland {
		if name := filepath.Base(f.Path); f.Link == "/bin/busybox" && filepath.Dir(f.Path) != "bin" &&
			!slices.ContainsFunc(userland, func(e images.File) bool { return e.Path == "bin/"+name }) {
			userland = append(userland, images.File{Path: "bin/" + name, Link: "/bin/busybox"})
		}
	}
	// agnhost: the test binary over busybox and the Debian tools; the
	// user and group the suite expects the image to define; the
	// directories its subcommands write.
	agnhostFiles := withTools(userland, tools)
	agnhostFiles = setFile(agnhostFiles, images.File{Path: "etc/passwd", Mode: 0o644, Data: []byte(
		"root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")})
	agnhostFiles = setFile(agnhostFiles, images.File{Path: "etc/group", Mode: 0o644, Data: []byte(
		"root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\nnogroup:x:65534:\n")})
	agnhostFiles = append(agnhostFiles,
		images.File{Path: "agnhost", Mode: 0o755, Src: filepath.Join(bin, "agnhost")},
		// porter's TLS certificate for localhost, as upstream adds it.
		images.File{Path: "localhost.crt", Mode: 0o644, Src: filepath.Join(k8sDir, "test/images/agnhost/porter/localhost.crt")},
		images.File{Path: "localhost.key", Mode: 0o644, Src: filepath.Join(k8sDir, "test/images/agnhost/porter/localhost.key")},
		images.File{Path: "agnhost-2", Link: "agnhost"},
		images.File{Path: "uploads", Mode: 0o777, Dir: true},
		images.File{Path: "home/user-defined-in-image", Mode: 0o755, Dir: true},
		images.File{Path: "etc/nsswitch.conf", Mode: 0o644, Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
	)
	// Upstream's agnhost is built on Alpine Linux, and the ImageVolume spec
	// reads the base's os-release through the kitten image; this one says
	// what it is.
	agnhostFiles = setFile(agnhostFiles, images.File{Path: "etc/os-release", Mode: 0o644, Data: []byte(
		"NAME=\"Alpine Linux\"\nPRETTY_NAME=\"Alpine Linux (skiff's stand-in for agnhost: busybox and Debian's tools)\"\n")})
	agnhost := images.Image{Files: agnhostFiles, Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}}
	webPage := func(name string) images.Image {
		fs := slices.Clone(agnhostFiles)
		fs = append(fs,
			images.File{Path: name + ".jpg", Mode: 0o644, Src: filepath.Join(k8sDir, "test/images", name, "html", name+".jpg")},
			images.File{Path: "data.json", Mode: 0o644, Src: filepath.Join(k8sDir, "test/images", name, "html", "data.json")},
		)
		return images.Image{Files: fs, Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"}}
	}
	// nginx: busybox's httpd serving a page on port 80, in the foreground.
	nginx := images.Image{
		Files: append(slices.Clone(userland),
			images.File{Path: "usr/share/nginx/html/index.html", Mode: 0o644, Data: []byte("<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n")}),
		Entrypoint: []string{"/usr/sbin/httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"},
	}
	// glibc-dns-testing: dig and getent beside busybox.
	dnsTesting := images.Image{Files: withTools(userland, tools), Cmd: []string{"sh"}}

	all := []image{
		{"agnhost.tar", []string{e2eRegistry + "agnhost:2.66.1", e2eRegistry + "agnhost:2.55"}, agnhost},
		{"busybox.tar", []string{e2eRegistry + "busybox:1.37.0-2"}, images.Image{Files: userland, Cmd: []string{"sh"}}},
		{"pause.tar", []string{gcRegistry + "pause:3.10.2"}, images.Image{Files: []images.File{{Path: "pause", Mode: 0o755, Src: pause}}, Entrypoint: []string{"/pause"}}},
		{"nginx.tar", []string{e2eRegistry + "nginx:1.27.0-2", e2eRegistry + "nginx:1.28.0-2"}, nginx},
		{"glibc-dns-testing.tar", []string{e2eRegistry + "glibc-dns-testing:2.1.1"}, dnsTesting},
		{"kitten.tar", []string{e2eRegistry + "kitten:1.8"}, webPage("kitten")},
		{"nautilus.tar", []string{e2eRegistry + "nautilus:1.8"}, webPage("nautilus")},
		{"nonroot.tar", []string{e2eRegistry + "nonroot:1.5"}, images.Image{Files: userland, Cmd: []string{"sh"}, User: "1234"}},
		{"nonewprivs.tar", []string{e2eRegistry + "nonewprivs:1.4"}, images.Image{
			Files: append(slices.Clone(userland), images.File{Path: "usr/local/bin/nnp", Mode: 0o4755, Src: filepath.Join(bin, "nnp")}),
			Cmd:   []string{"nnp"},
		}},
		{"sample-apiserver.tar", []string{e2eRegistry + "sample-apiserver:1.29.2"}, images.Image{
			Files:      []images.File{{Path: "sample-apiserver", Mode: 0o755, Src: filepath.Join(bin, "sample-apiserver")}, {Path: "tmp", Mode: 0o1777, Dir: true}},
			Entrypoint: []string{"/sample-apiserver"},
		}},
		{"etcd.tar", []string{gcRegistry + "etcd:3.7.0-0"}, images.Image{
			Files:      append(slices.Clone(userland), images.File{Path: "usr/local/bin/etcd", Mode: 0o755, Src: filepath.Join(bin, "etcd")}, images.File{Path: "var/lib/etcd", Mode: 0o700, Dir: true}),
			Entrypoint: []string{"/usr/local/bin/etcd"},
		}},
	}
	for _, im := range all {
		// Prefixed: a tarball named like one built into skiff
		// (pause.tar, busybox.tar) would replace it on the node.
		path := filepath.Join(out, "conformance-"+im.file)
		if err := images.Write(path, im.refs, im.img, runtime.GOARCH); err != nil {
			return err
		}
		fmt.Println(path, strings.Join(im.refs, " "))
	}
	return nil
}

// hostTools are the build host's programs of tools and the shared
// libraries they load (ldd), at the paths the host has them, and the
// dynamic loader.
func hostTools(tools []tool) ([]images.File, error) {
	var files []images.File
	seen := map[string]bool{}
	add := func(imagePath, hostPath string) error {
		if seen[imagePath] {
			return nil
		}
		real, err := filepath.EvalSymlinks(hostPath)
		if err != nil {
			return err
		}
		st, err := os.Stat(real)
		if err != nil {
			return err
		}
		seen[imagePath] = true
		files = append(files, images.File{Path: imagePath, Mode: int64(st.Mode().Perm()), Src: real})
		return nil
	}
	var missing []string
	for _, t := range tools {
		host, err := exec.LookPath(filepath.Base(t.path))
		if err != nil && t.path == "usr/bin/nc" {
			host, err = exec.LookPath("nc.openbsd")
		}
		if err != nil {
			missing = append(missing, t.pkg)
			continue
		}
		if err := add(t.path, host); err != nil {
			return nil, err
		}
		libs, err := sharedLibraries(host)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := add(strings.TrimPrefix(l, "/"), l); err != nil {
				return nil, err
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("missing programs of the Debian packages %s (apt-get install them, or run make conformance-deps)", strings.Join(slices.Compact(missing), " "))
	}
	return files, nil
}

// sharedLibraries are the absolute paths ldd prints for binary: the
// libraries it loads and its dynamic loader.
func sharedLibraries(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if _, after, ok := strings.Cut(line, "=>"); ok {
			line = strings.TrimSpace(after)
		}
		if p, _, _ := strings.Cut(line, " "); strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, sc.Err()
}

// withTools is userland with tools added, a tool replacing busybox's
// applet of the same path.
func withTools(userland, tools []images.File) []images.File {
	fs := slices.Clone(userland)
	for _, t := range tools {
		fs = setFile(fs, t)
	}
	return fs
}

// setFile is fs with f in place of the entry of f's path, or added.
func setFile(fs []images.File, f images.File) []images.File {
	fs = slices.DeleteFunc(fs, func(e images.File) bool { return e.Path == f.Path })
	return append(fs, f)
}
