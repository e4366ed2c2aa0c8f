package apiserver

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestCertificates: `skiff certificate check` lists each certificate with
// its expiry date; `rotate` is refused while the server runs, and once it
// is stopped sets the leaves aside so the next start issues new ones, from
// the same CA, with which the admin kubeconfig works.
func TestCertificates(t *testing.T) {
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	out := skiff(t, "certificate", "check", "--data-dir", srv.DataDir)
	for _, want := range []string{"tls/ca.crt", "skiff-ca (CA)", "tls/serving.crt", "kubeconfig.yaml#skiff-admin", "controller-manager.kubeconfig", "scheduler.kubeconfig"} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)serving\.crt\s+kube-apiserver\s+\d{4}-\d{2}-\d{2}\s+\d+d\s+OK$`).MatchString(out) {
		t.Errorf("check does not show the serving certificate's expiry as YYYY-MM-DD:\n%s", out)
	}
	if out, err := exec.Command(e2eutil.Binary(t), "certificate", "rotate", "--data-dir", srv.DataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "stop it first") {
		t.Fatalf("rotate with the server running: %v\n%s", err, out)
	}
	serving := filepath.Join(srv.DataDir, "tls", "serving.crt")
	before := serial(t, serving)
	caBefore := serial(t, filepath.Join(srv.DataDir, "tls", "ca.crt"))
	srv.Stop(30 * time.Second)
	if out := skiff(t, "certificate", "rotate", "--data-dir", srv.DataDir); !strings.Contains(out, "set aside") {
		t.Fatalf("rotate:\n%s", out)
	}
	srv.Start()
	if after := serial(t, serving); after == before {
		t.Fatalf("the serving certificate was not issued again (serial %s)", after)
	}
	if ca := serial(t, filepath.Join(srv.DataDir, "tls", "ca.crt")); ca != caBefore {
		t.Fatalf("rotate replaced the CA")
	}
	if _, err := srv.Client().CoreV1().Namespaces().Get(e2eutil.Context(t, time.Minute), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("the new admin kubeconfig: %v", err)
	}
}

func serial(t *testing.T, path string) string {
	t.Helper()
	certs, err := certutil.CertsFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].SerialNumber.String()
}
