// Package jointoken is the node join token skiff server writes to
// DATA/token: "K10<sha256 of the cluster CA certificate, hex>::<id>.<secret>".
// The id.secret part is a Kubernetes bootstrap token; the hash lets a joining
// agent trust the API server's CA before it sends the secret.
package jointoken

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

const prefix = "K10"

var bootstrapToken = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// Token is a parsed join token.
type Token struct {
	CAHash string // hex sha256 of the CA certificate's DER; empty if not given
	ID     string
	Secret string
}

// Bootstrap is the bearer token: "id.secret".
func (t Token) Bootstrap() string { return t.ID + "." + t.Secret }

// String renders the token in the file format.
func (t Token) String() string {
	if t.CAHash == "" {
		return t.Bootstrap()
	}
	return prefix + t.CAHash + "::" + t.Bootstrap()
}

// Parse reads "K10<hash>::id.secret" or a bare "id.secret".
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	var t Token
	if strings.HasPrefix(s, prefix) {
		hash, rest, ok := strings.Cut(strings.TrimPrefix(s, prefix), "::")
		if !ok {
			return Token{}, errors.New("join token: missing '::' after the CA hash")
		}
		t.CAHash, s = strings.ToLower(hash), rest
		if _, err := hex.DecodeString(t.CAHash); err != nil || len(t.CAHash) != 64 {
			return Token{}, errors.New("join token: the CA hash is not 64 hex digits")
		}
	}
	if !bootstrapToken.MatchString(s) {
		return Token{}, errors.New("join token: expected id.secret ([a-z0-9]{6}.[a-z0-9]{16})")
	}
	t.ID, t.Secret, _ = strings.Cut(s, ".")
	return t, nil
}

// Hash is the CA hash for a PEM certificate.
func Hash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return "", errors.New("no PEM certificate")
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

// HashFile is the CA hash of the PEM certificate file at path.
func HashFile(path string) (string, error) {
	caPEM, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return Hash(caPEM)
}

// DiscoverCA connects to the API server at serverURL without trusting it,
// finds the CA certificate in the chain it presents whose hash matches
// t.CAHash, checks that the server's certificate chains to it, and returns
// (as PEM) the self-signed CA certificates of that chain: the cluster's
// trust bundle (the server presents it for this), which after `skiff
// certificate rotate-ca` holds the new CA and those it replaced.
func DiscoverCA(serverURL string, t Token) ([]byte, error) {
	if t.CAHash == "" {
		return nil, errors.New("join token has no CA hash: pass the CA file")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // verified by hash below
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	defer conn.Close()
	chain := conn.ConnectionState().PeerCertificates
	for _, c := range chain {
		sum := sha256.Sum256(c.Raw)
		if hex.EncodeToString(sum[:]) != t.CAHash || !c.IsCA {
			continue
		}
		// The leaf must chain to it, or the hash matched an unrelated CA.
		// After a CA rotation the chain holds the new CA signed by the
		// old, so a token naming the old CA still joins.
		pool, intermediates := x509.NewCertPool(), x509.NewCertPool()
		pool.AddCert(c)
		for _, i := range chain[1:] {
			intermediates.AddCert(i)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates}); err != nil {
			return nil, fmt.Errorf("server certificate does not chain to the CA in the join token: %w", err)
		}
		var buf bytes.Buffer
		for _, ca := range chain[1:] {
			if ca.IsCA && bytes.Equal(ca.RawIssuer, ca.RawSubject) && ca.CheckSignatureFrom(ca) == nil {
				_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
			}
		}
		return buf.Bytes(), nil
	}
	return nil, errors.New("the server did not present the CA named by the join token")
}
