// Command build compiles images/pause, images/testhost and the Gateway API
// conformance backend echo-basic as static binaries and assembles skiff's
// images from them with internal/images:
//
//	go run ./images/build -out images/out
//
// writes images/out/{pause,testhost,busybox,echo-basic}.tar (OCI image layouts, each
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

const echoBasicPackage = "sigs.k8s.io/gateway-api/conformance/echo-basic"

func build(ctx context.Context, out, version, goTool, busybox, arch string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "skiff-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	// echo-basic is the Gateway API conformance suite's backend, a tool
	// of go.mod at the gateway-api version pinned there.
	for name, pkg := range map[string]string{"pause": "./images/pause", "testhost": "./images/testhost", "echo-basic": echoBasicPackage} {
		bin := filepath.Join(tmp, name)
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w", pkg, err)
		}
		bins[name] = bin
	}
	return images.Build(ctx, images.Config{
		OutDir:          out,
		Version:         version,
		PauseBinary:     bins["pause"],
		TesthostBinary:  bins["testhost"],
		EchoBasicBinary: bins["echo-basic"],
		BusyboxBinary:   busybox,
		Arch:            arch,
	})
}
