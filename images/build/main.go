// Command build compiles images/pause and images/testhost as static
// binaries and assembles skiff's images from them with internal/images:
//
//	go run ./images/build -out images/out
//
// writes images/out/{pause,testhost,busybox}.tar (OCI image layouts, each
// tagged latest and -version). `make images` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/skiffdev/skiff/internal/images"
)

func main() {
	out := flag.String("out", "images/out", "directory for the image tarballs")
	version := flag.String("version", "dev", "tag for the images besides latest")
	goTool := flag.String("go", "go", "go command used to compile the binaries")
	busybox := flag.String("busybox", images.DefaultBusybox, "static busybox binary")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH to build for")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	paths, err := build(ctx, *out, *version, *goTool, *busybox, *arch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "images/build:", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	fmt.Fprintf(os.Stderr, "images/build: %d images in %s\n", len(paths), time.Since(start).Round(time.Millisecond))
}

func build(ctx context.Context, out, version, goTool, busybox, arch string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "skiff-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	for _, pkg := range []string{"pause", "testhost"} {
		bin := filepath.Join(tmp, pkg)
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./images/"+pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build ./images/%s: %w", pkg, err)
		}
		bins[pkg] = bin
	}
	return images.Build(ctx, images.Config{
		OutDir:         out,
		Version:        version,
		PauseBinary:    bins["pause"],
		TesthostBinary: bins["testhost"],
		BusyboxBinary:  busybox,
		Arch:           arch,
	})
}
