package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/skiffdev/skiff/internal/pki"
)

// TestRenewOnce: a running server's periodic check issues again a
// certificate that has come within pki.RenewBefore of its expiry, and
// leaves the others alone.
func TestRenewOnce(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	cfg.Defaults()
	s := &Server{cfg: cfg, Paths: cfg.Paths(), URL: "https://127.0.0.1:6443"}
	if renewed, err := s.renewOnce(); err != nil || len(renewed) != 0 {
		t.Fatalf("first run: renewed %v, err %v (nothing existed to renew)", renewed, err)
	}
	if renewed, err := s.renewOnce(); err != nil || len(renewed) != 0 {
		t.Fatalf("nothing due: renewed %v, err %v", renewed, err)
	}
	// The serving certificate now expires in ten days.
	ca, err := pki.LoadCA(s.Paths.TLSDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	serving := filepath.Join(s.Paths.TLSDir, servingPair+".crt")
	if err := os.WriteFile(serving, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	renewed, err := s.renewOnce()
	if err != nil || !slices.Equal(renewed, []string{serving}) {
		t.Fatalf("renewed %v (err %v), want the serving certificate alone", renewed, err)
	}
	certs, err := certutil.CertsFromFile(serving)
	if err != nil || time.Until(certs[0].NotAfter) < 365*24*time.Hour {
		t.Errorf("the renewed serving certificate expires %v (err %v)", certs[0].NotAfter, err)
	}
}

// TestFrontProxyCAName: the front-proxy CA's subject is not the cluster
// CA's, so checking a cluster CA client's certificate against the
// front-proxy CA (the API server does, on every request) finds no candidate
// issuer and costs no signature check.
func TestFrontProxyCAName(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	cfg.Defaults()
	f, err := preparePKI(cfg, "https://127.0.0.1:6443")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := certutil.CertsFromFile(f.caCert)
	if err != nil {
		t.Fatal(err)
	}
	front, err := certutil.CertsFromFile(f.frontProxyCA)
	if err != nil {
		t.Fatal(err)
	}
	if front[0].Subject.String() == cluster[0].Subject.String() {
		t.Fatalf("the front-proxy CA and the cluster CA share the subject %q", front[0].Subject)
	}
	if got := front[0].Subject.CommonName; got != frontProxyCAName {
		t.Errorf("front-proxy CA named %q, want %q", got, frontProxyCAName)
	}
}
