package e2eutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiffdev/skiff/internal/freeport"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the skiff binary the tests drive: $SKIFF_BIN, or else one
// built once per test process from this module into a temporary directory.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SKIFF_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SKIFF_BIN=%s: %v", p, err)
		}
		return p
	}
	build.once.Do(func() { build.path, build.err = buildBinary() })
	if build.err != nil {
		t.Fatalf("build skiff: %v", build.err)
	}
	return build.path
}

// buildBinary runs `make build` (version stamping and images included, as
// a user gets them) and returns the repository's bin/skiff.
func buildBinary() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("make", "-s", "build")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make build: %v\n%s", err, out)
	}
	return filepath.Join(root, "bin", "skiff"), nil
}

// Main runs a test package's tests: func TestMain(m *testing.M) { e2eutil.Main(m) }
func Main(m *testing.M) {
	os.Exit(m.Run())
}

// FreePort returns a TCP port free now, below the kernel's ephemeral range
// (internal/freeport), for a server the test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Pick()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}
