package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/skiffdev/skiff/internal/controller/meshca"
)

// peerIdentity verifies a peer's chain against the mesh roots for usage and
// returns the identity its SPIFFE ID names in trustDomain.
func peerIdentity(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, trustDomain string) (Identity, error) {
	if len(certs) == 0 {
		return Identity{}, errors.New("no peer certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return Identity{}, err
	}
	if len(certs[0].URIs) != 1 {
		return Identity{}, fmt.Errorf("peer certificate has %d URI SANs, want one SPIFFE ID", len(certs[0].URIs))
	}
	td, ns, sa, err := meshca.ParseSPIFFEID(certs[0].URIs[0])
	if err != nil {
		return Identity{}, err
	}
	if td != trustDomain {
		return Identity{}, fmt.Errorf("peer of trust domain %q, want %q", td, trustDomain)
	}
	return Identity{Namespace: ns, ServiceAccount: sa}, nil
}

// clientTLS is the tunnel client's configuration: it presents src's
// certificate and accepts only a server proving dst's identity.
func clientTLS(src *tls.Certificate, roots *x509.CertPool, dst Identity, trustDomain string) *tls.Config {
	return &tls.Config{
		ServerName:   dst.ServerName(),
		Certificates: []tls.Certificate{*src},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
		// The server's certificate names a SPIFFE ID, not a host name:
		// VerifyConnection checks it instead of the default verification.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := peerIdentity(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth, trustDomain)
			if err != nil {
				return err
			}
			if id != dst {
				return fmt.Errorf("tunnel peer is %s, want %s", id, dst)
			}
			return nil
		},
	}
}

// serverTLS is the tunnel server's configuration: the certificate of the
// identity the client's server name asks for, and a client certificate of
// the mesh required.
func serverTLS(get func(Identity) (*tls.Certificate, error), roots func() *x509.CertPool, trustDomain string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			id, ok := ParseServerName(hello.ServerName)
			if !ok {
				return nil, fmt.Errorf("server name %q names no mesh identity", hello.ServerName)
			}
			return get(id)
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := peerIdentity(cs.PeerCertificates, roots(), x509.ExtKeyUsageClientAuth, trustDomain)
			return err
		},
	}
}
