package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
)

// RenewBefore is how long before its expiry a certificate skiff issued is
// issued again when the server starts.
const RenewBefore = 30 * 24 * time.Hour

// CertInfo describes one certificate found on disk.
type CertInfo struct {
	// Path is the file; for a kubeconfig, the user follows a '#'.
	Path     string
	Subject  string
	NotAfter time.Time
	IsCA     bool
}

// Inspect lists the certificates of the PEM files (*.crt, *.pem: the first
// certificate of each, the one the file is for) and kubeconfigs
// (*.kubeconfig, *.yaml: each user's client certificate) in paths. Files
// without a certificate are skipped; a folder is read one level deep.
func Inspect(paths ...string) ([]CertInfo, error) {
	var out []CertInfo
	for _, p := range paths {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			files = files[:0]
			for _, e := range entries {
				if !e.IsDir() {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		for _, f := range files {
			out = append(out, inspectFile(f)...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func inspectFile(path string) []CertInfo {
	info := func(p string, c *x509.Certificate) CertInfo {
		return CertInfo{Path: p, Subject: c.Subject.CommonName, NotAfter: c.NotAfter, IsCA: c.IsCA}
	}
	switch ext := filepath.Ext(path); {
	case ext == ".crt" || ext == ".pem":
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return nil // kubelet-client-current.pem links to a dated file listed too
		}
		certs, err := certutil.CertsFromFile(path)
		if err != nil || len(certs) == 0 {
			return nil
		}
		return []CertInfo{info(path, certs[0])}
	case ext == ".kubeconfig" || ext == ".yaml" && strings.Contains(filepath.Base(path), "kubeconfig"):
		cfg, err := clientcmd.LoadFromFile(path)
		if err != nil {
			return nil
		}
		var out []CertInfo
		for name, u := range cfg.AuthInfos {
			if len(u.ClientCertificateData) == 0 {
				continue
			}
			certs, err := certutil.ParseCertsPEM(u.ClientCertificateData)
			if err != nil || len(certs) == 0 {
				continue
			}
			out = append(out, info(path+"#"+name, certs[0]))
		}
		return out
	}
	return nil
}

// KubeconfigCurrent reports whether the kubeconfig at path trusts the CA's
// bundle and authenticates with client certificates the CA signed that do
// not expire within RenewBefore.
func (ca *CA) KubeconfigCurrent(path string, now time.Time) bool {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil || len(cfg.AuthInfos) == 0 {
		return false
	}
	for _, cl := range cfg.Clusters {
		if !bytes.Equal(cl.CertificateAuthorityData, ca.PEM) {
			return false
		}
	}
	for _, u := range cfg.AuthInfos {
		certs, err := certutil.ParseCertsPEM(u.ClientCertificateData)
		if err != nil || now.Add(RenewBefore).After(certs[0].NotAfter) || !ca.Signed(certs[0]) {
			return false
		}
	}
	return true
}
