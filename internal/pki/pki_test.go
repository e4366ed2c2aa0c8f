package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

func TestEnsureIsIdempotentAndChains(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureCA(dir)
	if err != nil || string(again.PEM) != string(ca.PEM) {
		t.Fatalf("second EnsureCA made a new CA (err %v)", err)
	}
	leaf := Leaf{CommonName: "kube-apiserver", DNSNames: []string{"localhost", "kubernetes.default"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true}
	certPath, _, err := ca.Ensure(dir, "serving", leaf)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(certPath)
	if _, _, err := ca.Ensure(dir, "serving", leaf); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(certPath); string(second) != string(first) {
		t.Error("Ensure reissued a certificate that still covers its names")
	}
	certs, err := certutil.CertsFromFile(certPath)
	if err != nil || len(certs) != 2 {
		t.Fatalf("serving certificate file holds %d certificates (err %v), want leaf and CA", len(certs), err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "kubernetes.default"}); err != nil {
		t.Errorf("leaf does not verify against the CA: %v", err)
	}
	// A new name makes it reissue.
	leaf.DNSNames = append(leaf.DNSNames, "skiff.example")
	if _, _, err := ca.Ensure(dir, "serving", leaf); err != nil {
		t.Fatal(err)
	}
	certs, _ = certutil.CertsFromFile(certPath)
	if certs[0].VerifyHostname("skiff.example") != nil {
		t.Error("certificate not reissued for a new SAN")
	}
}

func TestClientCertificateUsage(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(Leaf{CommonName: "skiff-admin", Organization: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != "skiff-admin" || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "system:masters" {
		t.Errorf("subject = %v", c.Subject)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client certificate ext key usage = %v", c.ExtKeyUsage)
	}
}

func TestServiceAccountKey(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(priv) != dir || filepath.Dir(pub) != dir {
		t.Errorf("keys outside the dir: %s %s", priv, pub)
	}
	if st, err := os.Stat(priv); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v (err %v), want 0600", st.Mode().Perm(), err)
	}
}
