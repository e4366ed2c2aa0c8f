package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerd checks the images against a real, private containerd:
// the archives import with ctr, an image pulled through the CRI from a
// Mirror (imagePullPolicy: Always) has the archive's digest, and the
// images run. It needs root, containerd 2.x, its shim and ctr (bin/, from
// make build), runc and busybox-static, and the go command to compile the
// real binaries.
func TestContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := runtimeProgram(bin); err != nil {
			t.Skipf("needs %s (make build puts containerd, its shim and ctr in bin/): %v", bin, err)
		}
	}
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("needs %s (busybox-static)", DefaultBusybox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	archives := buildReal(ctx, t)
	// The mirror serves the images of the archives from containerd's
	// content store, once imported (as the agent's serves what it labels).
	listed := map[string]string{}
	for _, a := range archives {
		imgs, err := readArchive(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range imgs {
			d, _ := ti.img.Digest()
			listed[ti.ref.Name()] = d.String()
		}
	}
	store := &lateStore{listed: listed}
	mirror, err := NewMirror("127.0.0.1:0", store)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan error, 1)
	go func() { mdone <- mirror.Run(mctx) }()
	defer func() {
		mcancel()
		if err := <-mdone; err != nil {
			t.Error(err)
		}
	}()

	sock := startContainerd(ctx, t, containerdConfig(), map[string]string{"certs.d/localhost/hosts.toml": HostsTOML(mirror.URL())})
	store.setDir(filepath.Join(filepath.Dir(sock), "root", "io.containerd.content.v1.content"))
	ctr := func(args ...string) (string, error) {
		// Standard output only: ctr 2.2+ warns on standard error on a
		// cgroup v1 host.
		var stderr strings.Builder
		cmd := exec.CommandContext(ctx, program(t, "ctr"), append([]string{"--address", sock, "-n", "k8s.io"}, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out) + stderr.String(), err
		}
		return string(out), nil
	}

	// Import, as the agent would.
	for _, a := range archives {
		if out, err := ctr("images", "import", a); err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", a, err, out)
		}
	}
	out, err := ctr("images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{Pause + ":latest", Pause + ":v1.2.3", Busybox + ":latest"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("ctr images ls lacks %s:\n%s", want, out)
		}
	}

	// Pull testhost through the CRI (imagePullPolicy Always), which goes to
	// the mirror.
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	images := runtimeapi.NewImageServiceClient(conn)
	ref := Testhost + ":latest"
	if _, err := images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("CRI PullImage %s: %v", ref, err)
	}
	status, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || status.GetImage() == nil {
		t.Fatalf("CRI ImageStatus %s: %v, %v", ref, status, err)
	}
	imgs, err := readArchive(archives[1])
	if err != nil {
		t.Fatal(err)
	}
	digest, err := imgs[0].img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wantRepoDigest := Testhost + "@" + digest.String()
	if got := status.GetImage().GetRepoDigests(); len(got) != 1 || got[0] != wantRepoDigest {
		t.Errorf("pulled %s has repo digests %v, want [%s]", ref, got, wantRepoDigest)
	}

	// Run what was pulled and what was imported.
	_, err = ctr("run", "--rm", ref, "t1", "/testhost", "exit", "--code", "3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("ctr run testhost exit --code 3: %v, want exit status 3", err)
	}
	if out, err := ctr("run", "--rm", Busybox+":latest", "t2", "sh", "-c", "echo hi; tar --help 2>&1 | head -1"); err != nil || !strings.HasPrefix(out, "hi\nBusyBox") {
		t.Errorf("ctr run busybox sh -c: %q, %v; want hi and tar's help", out, err)
	}
}

// containerdConfig is the containerd config the test uses, with
// {{DIR}} standing for the state directory: the settings this machine
// needs (restrict_oom_score_adj, the local sandbox image, Debian's CNI
// directory); the mirror for the host "localhost" is in
// {{DIR}}/certs.d/localhost/hosts.toml (HostsTOML).
func containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = "{{DIR}}/root"
state = "{{DIR}}/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{{DIR}}/containerd.sock"

[ttrpc]
  address = "{{DIR}}/containerd.sock.ttrpc"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "%s:latest"

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "{{DIR}}/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "{{DIR}}/cni"
`, Pause)
}

// runtimeProgram finds containerd, its shim or ctr where the agent does:
// beside the skiff binary under test (SKIFF_BIN, else the repository's
// bin/), then on $PATH.
func runtimeProgram(name string) (string, error) {
	dir := filepath.Join("..", "..", "bin")
	if b := os.Getenv("SKIFF_BIN"); b != "" {
		dir = filepath.Dir(b)
	}
	if p, err := filepath.Abs(filepath.Join(dir, name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

func program(t *testing.T, name string) string {
	t.Helper()
	p, err := runtimeProgram(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// buildReal compiles images/pause and images/testhost and builds the
// images from them with the host's busybox.
func buildReal(ctx context.Context, t *testing.T) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			t.Skip("needs the go command to compile images/pause and images/testhost")
		}
	}
	dir := t.TempDir()
	bin := map[string]string{}
	for _, pkg := range []string{"pause", "testhost"} {
		bin[pkg] = filepath.Join(dir, pkg)
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin[pkg], "./images/"+pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./images/%s: %v\n%s", pkg, err, out)
		}
	}
	paths, err := Build(ctx, Config{
		OutDir:         filepath.Join(dir, "out"),
		Version:        "v1.2.3",
		PauseBinary:    bin["pause"],
		TesthostBinary: bin["testhost"],
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// startContainerd runs a private containerd with config (in which {{DIR}}
// is replaced by its state directory) until the test ends, and returns its
// socket. Cleanup stops it, unmounts whatever it left mounted and removes
// the directory.
func startContainerd(ctx context.Context, t *testing.T, config string, files map[string]string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "skiff-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	config = strings.ReplaceAll(config, "{{DIR}}", dir)
	files["config.toml"] = config
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	containerd := program(t, "containerd")
	cmd := exec.Command(containerd, "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(containerd)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("containerd log:\n%s", b)
			}
		}
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})

	sock := filepath.Join(dir, "containerd.sock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := exec.CommandContext(ctx, program(t, "ctr"), "--address", sock, "version").Run()
		if err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatal("containerd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mounts[i], err)
		}
	}
}

// lateStore is a ContentStore whose directory is known once containerd
// runs.
type lateStore struct {
	mu     sync.Mutex
	dir    string
	listed map[string]string
}

func (s *lateStore) setDir(d string) { s.mu.Lock(); s.dir = d; s.mu.Unlock() }

func (s *lateStore) store() ContentStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ContentStore{Dir: s.dir, List: func(context.Context) (map[string]string, error) { return s.listed, nil }}
}

func (s *lateStore) Images(ctx context.Context) (map[string]string, error) {
	return s.store().Images(ctx)
}

func (s *lateStore) Open(digest string) (*os.File, error) { return s.store().Open(digest) }
