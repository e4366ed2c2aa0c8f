package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestEnsureNamedCA(t *testing.T) {
	tests := []struct {
		name       string
		ensure     func(dir string) (*CA, error)
		wantSubjCN string
	}{
		{"EnsureCA names it skiff-ca", EnsureCA, "skiff-ca"},
		{"EnsureNamedCA takes the name", func(dir string) (*CA, error) { return EnsureNamedCA(dir, "skiff-mesh-ca") }, "skiff-mesh-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ca, err := tt.ensure(dir)
			if err != nil {
				t.Fatal(err)
			}
			if ca.Cert.Subject.CommonName != tt.wantSubjCN || !ca.Cert.IsCA || ca.Cert.CheckSignatureFrom(ca.Cert) != nil {
				t.Errorf("CA %q (IsCA %t) is not a self-signed root named %q", ca.Cert.Subject.CommonName, ca.Cert.IsCA, tt.wantSubjCN)
			}
			// Loaded again whatever name is asked for.
			again, err := EnsureNamedCA(dir, "another-name")
			if err != nil || !again.Cert.Equal(ca.Cert) {
				t.Errorf("second EnsureNamedCA made a new CA (err %v)", err)
			}
		})
	}
	if _, err := EnsureNamedCA(t.TempDir(), ""); err == nil {
		t.Error("EnsureNamedCA took an empty common name")
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

// TestRotateCA checks that a rotated CA signs new leaves that clients
// trusting only the old CA still verify (through the cross-signed CA in
// their chain), and that certificates of the old CA stay trusted.
func TestRotateCA(t *testing.T) {
	dir := t.TempDir()
	old, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaf := Leaf{CommonName: "kube-apiserver", DNSNames: []string{"localhost"}, Server: true}
	if _, _, err := old.Ensure(dir, "serving", leaf); err != nil {
		t.Fatal(err)
	}
	oldClient, _, err := old.Issue(Leaf{CommonName: "node"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := RotateCA(dir, filepath.Join(dir, "rotated-1"), time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "skiff-ca@1" || ca.Cert.Equal(old.Cert) {
		t.Fatalf("rotated CA = %s", ca.Cert.Subject)
	}
	if bundle, _ := certutil.ParseCertsPEM(ca.PEM); len(bundle) != 2 || !bundle[1].Equal(old.Cert) {
		t.Fatalf("bundle holds %d certificates, want the new and the old CA", len(bundle))
	}
	if saved, err := LoadCA(filepath.Join(dir, "rotated-1")); err != nil || !saved.Cert.Equal(old.Cert) {
		t.Fatalf("old CA not kept (err %v)", err)
	}
	if !Succeeds(ca.PEM, old.PEM) || Succeeds(old.PEM, ca.PEM) || Succeeds(ca.PEM, ca.PEM) {
		t.Error("Succeeds does not tell a rotation from its reverse or from itself")
	}
	// The old leaf is reissued by the new CA.
	certPath, _, err := ca.Ensure(dir, "serving", leaf)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certutil.CertsFromFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Signed(chain[0]) {
		t.Fatal("serving certificate not reissued by the new CA")
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	for name, root := range map[string]*x509.Certificate{"old": old.Cert, "new": ca.Cert} {
		roots := x509.NewCertPool()
		roots.AddCert(root)
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, DNSName: "localhost"}); err != nil {
			t.Errorf("a client trusting the %s CA rejects the new serving certificate: %v", name, err)
		}
	}
	bundle := x509.NewCertPool()
	bundle.AppendCertsFromPEM(ca.PEM)
	c, _ := certutil.ParseCertsPEM(oldClient)
	if _, err := c[0].Verify(x509.VerifyOptions{Roots: bundle, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the bundle rejects a client certificate of the old CA: %v", err)
	}
	// After a second rotation, a client trusting only the first CA still
	// verifies the newest leaves.
	third, err := RotateCA(dir, filepath.Join(dir, "rotated-2"), time.Unix(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	certPath, _, err = third.Ensure(dir, "serving", leaf)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ = certutil.CertsFromFile(certPath)
	intermediates = x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	first := x509.NewCertPool()
	first.AddCert(old.Cert)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: first, Intermediates: intermediates, DNSName: "localhost"}); err != nil {
		t.Errorf("after two rotations, a client trusting the first CA rejects the serving certificate: %v", err)
	}
	// A key that is not the certificate's is refused with a pointer.
	if err := os.WriteFile(filepath.Join(dir, CAKey), mustRead(t, filepath.Join(dir, "rotated-2", CAKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "rotated-") {
		t.Errorf("LoadCA with the old key: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
