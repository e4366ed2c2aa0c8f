// Package pki creates and loads the cluster's certificate authority and the
// certificates and keys that skiff's components use: the API server's serving
// certificate, client certificates for the admin, the controller manager, the
// scheduler and nodes, and the service-account signing key.
//
// Everything lives as PEM files in one directory; Ensure creates what is
// missing and leaves what exists alone, so restarts keep their identities.
package pki

import (
	"bytes"
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
	// CACross is the current CA certificate signed by the CA it replaced
	// (`skiff certificate rotate-ca`), then those of earlier rotations:
	// serving certificates carry them in their chain, so clients that
	// trust only an old CA still verify them.
	CACross = "ca-cross.crt"
	// CASigner is the current CA certificate alone (CACert is a bundle
	// after a rotation), for the controller manager's signer, which takes
	// exactly one certificate.
	CASigner = "ca-signer.crt"
)

const validity = 10 * 365 * 24 * time.Hour

// CA is a loaded certificate authority.
type CA struct {
	// Cert signs; it is the first certificate of CACert.
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is CACert as PEM, as clients need it: the current CA, then
	// those it replaced, which clients keep trusting.
	PEM []byte
	// Chain is what serving certificates carry after their leaf: the
	// cross-signed current CA (after a rotation), then PEM.
	Chain []byte
}

// EnsureCA loads the CA in dir or creates it, named "skiff-ca".
func EnsureCA(dir string) (*CA, error) { return EnsureNamedCA(dir, "skiff-ca") }

// EnsureNamedCA loads the CA in dir or creates it, a root of its own with
// commonName as its subject. An existing CA is loaded whatever its name.
func EnsureNamedCA(dir, commonName string) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("create CA: the common name is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	if !exists(certPath) || !exists(keyPath) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: commonName}, key)
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
	if !publicKeysEqual(certs[0].PublicKey, signer.Public()) {
		return nil, fmt.Errorf("%s: its key is not that of its first certificate (an interrupted rotate-ca? the previous CA is in a rotated-* folder beside it)", filepath.Join(dir, CAKey))
	}
	ca := &CA{Cert: certs[0], Key: signer, PEM: certPEM, Chain: certPEM}
	if cross, err := os.ReadFile(filepath.Join(dir, CACross)); err == nil {
		if c, err := certutil.ParseCertsPEM(cross); err == nil && publicKeysEqual(c[0].PublicKey, signer.Public()) {
			ca.Chain = append(cross, certPEM...)
		}
	}
	return ca, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// RotateCA replaces the CA in dir with a new one, moving the old files into
// backup: the new CA certificate comes first in CACert, followed by the
// certificates it replaces (so certificates they signed stay trusted), and
// CACross holds it signed by the old CA (so clients that trust only the old
// one verify what the new one signs). It returns the new CA.
func RotateCA(dir, backup string, now time.Time) (*CA, error) {
	old, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// A subject of its own, so chains through the cross-signed
	// certificate are told apart from the old CA's.
	self, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: fmt.Sprintf("skiff-ca@%d", now.Unix())}, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	tmpl := *self
	tmpl.Raw, tmpl.RawTBSCertificate, tmpl.RawSubjectPublicKeyInfo, tmpl.RawSubject, tmpl.RawIssuer = nil, nil, nil, nil, nil
	tmpl.AuthorityKeyId, tmpl.SignatureAlgorithm = nil, x509.UnknownSignatureAlgorithm
	crossDER, err := x509.CreateCertificate(rand.Reader, &tmpl, old.Cert, key.Public(), old.Key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign the new CA: %w", err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(backup, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []string{CACert, CAKey, CACross} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := WriteFile(filepath.Join(backup, f), data, 0o600); err != nil {
			return nil, err
		}
	}
	// The key and the certificate change together in LoadCA's eyes: a
	// crash between the two renames is reported, and the backup restores.
	// The cross-signed certificates of earlier rotations follow, so a
	// client that trusts any CA of the bundle finds a chain.
	cross := encodeCert(crossDER)
	if earlier, err := os.ReadFile(filepath.Join(dir, CACross)); err == nil {
		cross = append(cross, earlier...)
	}
	if err := WriteFile(filepath.Join(dir, CACross), cross, 0o644); err != nil {
		return nil, err
	}
	if err := WriteFile(filepath.Join(dir, CAKey), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFile(filepath.Join(dir, CACert), append(encodeCert(self.Raw), old.PEM...), 0o644); err != nil {
		return nil, err
	}
	return LoadCA(dir)
}

// Succeeds reports whether the CA bundle next is a rotation of prev: its
// first certificate is new, and prev's first is among those it keeps.
func Succeeds(next, prev []byte) bool {
	n, err := certutil.ParseCertsPEM(next)
	if err != nil {
		return false
	}
	p, err := certutil.ParseCertsPEM(prev)
	if err != nil || n[0].Equal(p[0]) {
		return false
	}
	for _, c := range n[1:] {
		if c.Equal(p[0]) {
			return true
		}
	}
	return false
}

// WriteSigner writes CASigner, the current CA certificate alone.
func (ca *CA) WriteSigner(dir string) (string, error) {
	path := filepath.Join(dir, CASigner)
	return path, WriteFile(path, encodeCert(ca.Cert.Raw), 0o644)
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
	if exists(certPath) && exists(keyPath) && ca.covers(certPath, leaf) {
		return certPath, keyPath, nil
	}
	certPEM, keyPEM, err := ca.Issue(leaf)
	if err != nil {
		return "", "", err
	}
	// The files carry the CA's chain after the leaf: a joining agent
	// checks the serving certificate's CA against the hash in its join
	// token, and after a CA rotation, peers that trust only the old CA
	// verify the leaf through the cross-signed new one.
	certPEM = append(certPEM, ca.Chain...)
	if err := WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, WriteFile(keyPath, keyPEM, 0o600)
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
	if err := WriteFile(privPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return privPath, pubPath, WriteFile(pubPath, encodePEM("PUBLIC KEY", pubDER), 0o644)
}

// covers reports whether the certificate at path is the CA's, is not due
// for renewal and carries every name leaf asks for.
func (ca *CA) covers(path string, leaf Leaf) bool {
	certs, err := certutil.CertsFromFile(path)
	if err != nil || len(certs) == 0 {
		return false
	}
	c := certs[0]
	if c.Subject.CommonName != leaf.CommonName || time.Now().After(c.NotAfter.Add(-RenewBefore)) || !ca.Signed(c) {
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

// Signed reports whether the current CA signed c.
func (ca *CA) Signed(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, ca.Cert.RawSubject) && c.CheckSignatureFrom(ca.Cert) == nil
}

func writeKeyPair(certPath, keyPath string, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	if err := WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFile(certPath, encodeCert(cert.Raw), 0o644)
}

func encodeCert(der []byte) []byte { return encodePEM(certutil.CertificateBlockType, der) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// WriteFile writes atomically: a crash never leaves half a key behind.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
