package node

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
)

// TestImageImport: a docker-archive tarball built here (the test image
// under a name no registry has) is imported with `skiff image import`,
// from a file and from standard input, listed by `skiff image ls`, runs
// in a pod with imagePullPolicy Never and, offline, with Always (the node's
// mirror serves imported images), and is gone after `skiff image rm`.
func TestImageImport(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dir := t.TempDir()
	const ref = "airgap.example/team/testhost:v1"
	const ref2 = "airgap.example/team/testhost:from-stdin"
	archive := dockerArchive(t, dir, "app.tar", ref)
	archive2 := dockerArchive(t, dir, "stdin.tar", ref2)
	agentDir := filepath.Join(the.dataDir, "agent")

	out := skiffOut(t, nil, "image", "import", "--data-dir", agentDir, archive)
	if !strings.Contains(out, "imported "+ref) {
		t.Fatalf("import printed:\n%s", out)
	}
	if strings.Contains(out, "importing") {
		t.Errorf("import into a pipe showed its progress:\n%s", out)
	}
	// On a terminal (script(1) gives it one) it shows how much of the
	// file it has read.
	line := fmt.Sprintf("'%s' image import --data-dir '%s' '%s'", the.bin, agentDir, archive)
	tty, err := exec.Command("script", "-qec", line, "/dev/null").CombinedOutput()
	if err != nil || !regexp.MustCompile(`importing \S+app\.tar\s+[\d.]+ [KM]iB / [\d.]+ [KM]iB\s+100%`).Match(tty) {
		t.Errorf("import on a terminal: %v, want its progress up to 100%%:\n%q", err, tty)
	}
	f, err := os.Open(archive2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out := skiffOut(t, f, "image", "import", "--data-dir", agentDir, "-"); !strings.Contains(out, "imported "+ref2) {
		t.Fatalf("import from stdin printed:\n%s", out)
	}
	if out := skiffOut(t, nil, "image", "ls", "--data-dir", agentDir); !strings.Contains(out, ref) || !strings.Contains(out, ref2) {
		t.Fatalf("ls lacks the imported images:\n%s", out)
	}

	createPod(t, ns, pod("airgapped", container(func(c *corev1.Container) {
		c.Image = ref
		c.ImagePullPolicy = corev1.PullNever
	})))
	waitRunning(t, ns, "airgapped")
	// imagePullPolicy Always pulls it from the node's own mirror (no
	// registry has it), from the file and from standard input alike, and
	// again after a pull (which rewrites containerd's record of it).
	for i, r := range []string{ref, ref2, ref} {
		podName := fmt.Sprintf("always-%d", i)
		createPod(t, ns, pod(podName, container(func(c *corev1.Container) {
			c.Image = r
			c.ImagePullPolicy = corev1.PullAlways
		})))
		waitRunning(t, ns, podName)
	}

	skiffOut(t, nil, "image", "rm", "--data-dir", agentDir, ref2)
	if out := skiffOut(t, nil, "image", "ls", "--data-dir", agentDir); strings.Contains(out, ref2) {
		t.Fatalf("ls after rm still lists %s:\n%s", ref2, out)
	}
	cmd := exec.Command(the.bin, "image", "import", "--data-dir", agentDir, filepath.Join(dir, "missing.tar"))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("import of a missing file succeeded:\n%s", out)
	}
}

func skiffOut(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command(the.bin, args...)
	cmd.Stdin = stdin
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dockerArchive writes the test image as a docker-archive tarball (what
// `docker save` writes) named ref.
func dockerArchive(t *testing.T, dir, file, ref string) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join(filepath.Dir(the.bin), "..", "images", "out", "testhost.tar"))
	if err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(dir, "layout-"+file)
	untar(t, root, layoutDir)
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		t.Fatalf("index of %s: %v", root, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// An image of its own (a new config, so a new image ID), as a user's
	// would be, rather than the test image under another name.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["example.skiff.dev/archive"] = file
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("the test image's archive (make build writes it): %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
