// Package kubeconfig writes the kubeconfig files skiff hands to its users and
// components, and builds REST configs from them.
package kubeconfig

import (
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credentials are what a kubeconfig authenticates with: a client certificate
// (CertPEM/KeyPEM) or a bearer token.
type Credentials struct {
	CertPEM, KeyPEM []byte
	Token           string
}

// Write writes a kubeconfig for server, trusting caPEM, with one context
// named "default" (as k3s does) for user name.
func Write(path, server string, caPEM []byte, user string, cred Credentials) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cred.CertPEM,
		ClientKeyData:         cred.KeyPEM,
		Token:                 cred.Token,
	}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: user}
	cfg.CurrentContext = "default"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return Save(path, cfg)
}

// Save writes cfg to path atomically (a crash leaves the old file or the
// new one), readable by its owner only.
func Save(path string, cfg *clientcmdapi.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
