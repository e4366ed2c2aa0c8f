// Package pki creates and loads the cluster's certificate authority and the
// certificates and keys that skiff's components use: the API server's serving
// certificate, client certificates for the admin, the controller manager, the
// scheduler and nodes, and the service-account signing key.
//
// Everything lives as PEM files in one directory; Ensure creates what is
// missing and leaves what exists alone, so restarts keep their identities.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// File names inside the PKI directory.
const (
	CACert          = "ca.crt"
	CAKey           = "ca.key"
	ServingCert     = "serving.crt"
	ServingKey      = "serving.key"
	ServiceAccount  = "service-account.key"
	ServiceAccountP = "service-account.pub"
)

const validity = 10 * 365 * 24 * time.Hour

// CA is a loaded certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate as PEM, as clients need it.
	PEM []byte
}

// EnsureCA loads the CA in dir or creates it.
func EnsureCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	if !exists(certPath) || !exists(keyPath) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "skiff-ca"}, key)
		if err != nil {
			return nil, fmt.Errorf("create CA: %w", err)
		}
		if err := writeKeyPair(certPath, keyPath, cert, key); err != nil {
			return nil, err
		}
	}
	return LoadCA(dir)
}

// LoadCA reads the CA certificate and key from dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACert))
	if err != nil {
		return nil, err
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", CACert, err)
	}
	key, err := keyutil.PrivateKeyFromFile(filepath.Join(dir, CAKey))
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	return &CA{Cert: certs[0], Key: signer, PEM: certPEM}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Server       bool // serving certificate (else a client certificate)
}

// Ensure writes name.crt and name.key signed by the CA unless both exist and
// the existing certificate still covers the requested names.
func (ca *CA) Ensure(dir, name string, leaf Leaf) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if exists(certPath) && exists(keyPath) && covers(certPath, leaf) {
		return certPath, keyPath, nil
	}
	certPEM, keyPEM, err := ca.Issue(leaf)
	if err != nil {
		return "", "", err
	}
	if leaf.Server {
		// Serving certificates carry the CA in their chain, so a joining
		// agent can check the CA against the hash in its join token.
		certPEM = append(certPEM, ca.PEM...)
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, writeFile(keyPath, keyPEM, 0o600)
}

// Issue signs a new key pair for leaf and returns both as PEM.
func (ca *CA) Issue(leaf Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: leaf.CommonName, Organization: leaf.Organization},
		DNSNames:     leaf.DNSNames,
		IPAddresses:  leaf.IPs,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if leaf.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", leaf.CommonName, err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// EnsureServiceAccountKey creates the key pair that signs service-account tokens.
func EnsureServiceAccountKey(dir string) (privPath, pubPath string, err error) {
	privPath, pubPath = filepath.Join(dir, ServiceAccount), filepath.Join(dir, ServiceAccountP)
	if exists(privPath) && exists(pubPath) {
		return privPath, pubPath, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", err
	}
	if err := writeFile(privPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return privPath, pubPath, writeFile(pubPath, encodePEM("PUBLIC KEY", pubDER), 0o644)
}

// covers reports whether the certificate at path carries every name leaf asks for.
func covers(path string, leaf Leaf) bool {
	certs, err := certutil.CertsFromFile(path)
	if err != nil || len(certs) == 0 {
		return false
	}
	c := certs[0]
	if c.Subject.CommonName != leaf.CommonName || time.Now().After(c.NotAfter.Add(-RenewBefore)) {
		return false
	}
	for _, n := range leaf.DNSNames {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range leaf.IPs {
		if c.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

func writeKeyPair(certPath, keyPath string, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(certPath, encodeCert(cert.Raw), 0o644)
}

func encodeCert(der []byte) []byte { return encodePEM(certutil.CertificateBlockType, der) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFile writes atomically: a crash never leaves half a key behind.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
