package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"

	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/pki"
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
	caRotation(t, srv)
}

// caRotation: `rotate-ca` is refused while the server runs; once it is
// stopped it makes a new CA that the next start issues every certificate
// from, while the admin kubeconfig and the join token of before keep
// working, the controller manager signs with the new CA and publishes the
// bundle to pods.
func caRotation(t *testing.T, srv *e2eutil.Server) {
	if out, err := exec.Command(e2eutil.Binary(t), "certificate", "rotate-ca", "--data-dir", srv.DataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "stop it first") {
		t.Fatalf("rotate-ca with the server running: %v\n%s", err, out)
	}
	oldAdmin := srv.RESTConfig()
	oldToken, err := os.ReadFile(filepath.Join(srv.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop(30 * time.Second)
	if out := skiff(t, "certificate", "rotate-ca", "--data-dir", srv.DataDir); !strings.Contains(out, "new CA written") {
		t.Fatalf("rotate-ca:\n%s", out)
	}
	srv.Start()
	ctx := e2eutil.Context(t, 2*time.Minute)
	ca, err := pki.LoadCA(filepath.Join(srv.DataDir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ca.Cert.Subject.CommonName, "skiff-ca@") {
		t.Fatalf("CA after rotate-ca: %s", ca.Cert.Subject.CommonName)
	}
	if certs, err := certutil.CertsFromFile(filepath.Join(srv.DataDir, "tls", "serving.crt")); err != nil || !ca.Signed(certs[0]) {
		t.Fatalf("the serving certificate is not the new CA's (err %v)", err)
	}
	old, err := kubernetes.NewForConfig(oldAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("the admin kubeconfig of before the rotation: %v", err)
	}
	if _, err := srv.Client().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("the new admin kubeconfig: %v", err)
	}
	tok, err := jointoken.Parse(string(oldToken))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := jointoken.DiscoverCA(srv.URL, tok); err != nil || string(got) != string(ca.PEM) {
		t.Errorf("the join token of before the rotation: %v", err)
	}
	// Pods get the bundle: the new CA and the old.
	waitFor(t, time.Minute, "kube-root-ca.crt holding the bundle", func() bool {
		cm, err := srv.Client().CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] == string(ca.PEM)
	})
	// The controller manager signs with the new CA.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "rotated-ca-user"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	csrs := srv.Client().CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "rotated-ca-user"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    csrPEM,
			SignerName: certificatesv1.KubeAPIServerClientSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth, certificatesv1.UsageDigitalSignature},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", Message: "approved by the test",
	})
	if _, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var issued []byte
	waitFor(t, time.Minute, "certificate for the approved CSR", func() bool {
		got, err := csrs.Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		issued = got.Status.Certificate
		return len(issued) > 0
	})
	if certs, err := certutil.ParseCertsPEM(issued); err != nil || !ca.Signed(certs[0]) {
		t.Errorf("the controller manager signed the CSR with another CA than the new one (err %v)", err)
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
