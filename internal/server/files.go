package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/skiffdev/skiff/internal/kubeconfig"
	"github.com/skiffdev/skiff/internal/pki"
)

// files are the paths of everything preparePKI wrote.
type files struct {
	caCert, caKey, caSigner                          string
	servingCert, servingKey                          string
	kubeletClientCert, kubeletClientKey              string
	saKey, saPub                                     string
	controllerManagerKubeconfig, schedulerKubeconfig string
	authnConfig                                      string
	// frontProxyCA signs proxyClientCert, with which the API server's
	// aggregator proxies to extension API servers (metrics-server), which
	// trust the user it names in its headers.
	frontProxyCA, proxyClientCert, proxyClientKey string
	// metricsServerCert serves metrics.k8s.io; metricsServerKubeconfig is
	// metrics-server's identity (system:metrics-server).
	metricsServerCert, metricsServerKey, metricsServerKubeconfig string
	// controllerManagerCert and schedulerCert serve the two components'
	// health and metrics ports (127.0.0.1): issued once, where upstream's
	// components would generate a self-signed RSA pair on every start.
	controllerManagerCert, controllerManagerKey string
	schedulerCert, schedulerKey                 string
	// encryption is set when Paths.EncryptionConfig is to be passed.
	encryption bool
	// auditPolicy is the policy file in use.
	auditPolicy string
	// schedulerConfig is where the scheduler's KubeSchedulerConfiguration
	// is written (schedulerArgs).
	schedulerConfig string
}

// The credentials preparePKI issues into Paths.TLSDir: key pairs NAME.crt
// and NAME.key, and kubeconfigs with a client certificate.
const (
	servingPair                     = "serving"
	kubeletClientPair               = "apiserver-kubelet-client"
	controllerManagerKubeconfigFile = "controller-manager.kubeconfig"
	schedulerKubeconfigFile         = "scheduler.kubeconfig"
	schedulerConfigFile             = "scheduler.yaml"
	metricsServerKubeconfigFile     = "metrics-server.kubeconfig"
	metricsServerPair               = "metrics-server"
	controllerManagerPair           = "kube-controller-manager"
	schedulerPair                   = "kube-scheduler"
	// frontProxyDir holds the front-proxy CA and the aggregator's client
	// certificate (proxyClientPair), apart from the cluster CA: a client
	// certificate of the cluster CA must not pass as the front proxy.
	frontProxyDir   = "front-proxy"
	proxyClientPair = "front-proxy-client"
	// frontProxyCAName is the front-proxy CA's subject. It must differ from
	// the cluster CA's: the API server checks every client certificate
	// against the front-proxy CA before the cluster CA, and Go tries the
	// signature of every CA whose subject is the certificate's issuer, so
	// a shared name costs each request of a cluster CA client a second,
	// failing signature check (~4.7 % of the API server's CPU under load,
	// docs/perf.md).
	frontProxyCAName = "skiff-front-proxy-ca"
	// etcdMemberPair is an HA server's etcd member certificate, in
	// Paths.EtcdTLSDir.
	etcdMemberPair = "member"
)

// anonymous requests are refused (401) everywhere but on the health
// endpoints, which load balancers and probes call without credentials.
const authnConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
`

func preparePKI(cfg Config, url string) (files, error) {
	dir := cfg.Paths().TLSDir
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return files{}, err
	}
	f := files{
		caCert: filepath.Join(dir, pki.CACert),
		caKey:  filepath.Join(dir, pki.CAKey),
	}
	if f.caSigner, err = ca.WriteSigner(dir); err != nil {
		return files{}, err
	}
	serving := pki.Leaf{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", Hostname()},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		Server:     true,
	}
	if ip, err := firstServiceIP(cfg.Cluster.ServiceCIDR); err == nil {
		serving.IPs = append(serving.IPs, ip)
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil {
		serving.IPs = append(serving.IPs, ip)
	}
	for _, san := range append([]string{cfg.AdvertiseAddress, cfg.BindAddress}, cfg.TLSSANs...) {
		if ip := net.ParseIP(san); ip != nil {
			if !ip.IsUnspecified() {
				serving.IPs = append(serving.IPs, ip)
			}
		} else if san != "" {
			serving.DNSNames = append(serving.DNSNames, san)
		}
	}
	if f.servingCert, f.servingKey, err = ca.Ensure(dir, servingPair, serving); err != nil {
		return files{}, err
	}
	if f.kubeletClientCert, f.kubeletClientKey, err = ca.Ensure(dir, kubeletClientPair, pki.Leaf{
		CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"},
	}); err != nil {
		return files{}, err
	}
	if f.saKey, f.saPub, err = pki.EnsureServiceAccountKey(dir); err != nil {
		return files{}, err
	}
	clients := []struct {
		path string
		leaf pki.Leaf
	}{
		{cfg.Paths().Kubeconfig, pki.Leaf{CommonName: "skiff-admin", Organization: []string{"system:masters"}}},
		{filepath.Join(dir, controllerManagerKubeconfigFile), pki.Leaf{CommonName: "system:kube-controller-manager"}},
		{filepath.Join(dir, schedulerKubeconfigFile), pki.Leaf{CommonName: "system:kube-scheduler"}},
		{filepath.Join(dir, metricsServerKubeconfigFile), pki.Leaf{CommonName: metricsServerUser}},
	}
	for _, c := range clients {
		// Issued again when missing, when its certificate is within
		// pki.RenewBefore of its expiry, or after a CA rotation.
		if ca.KubeconfigCurrent(c.path, time.Now()) {
			continue
		}
		certPEM, keyPEM, err := ca.Issue(c.leaf)
		if err != nil {
			return files{}, err
		}
		if err := kubeconfig.Write(c.path, url, ca.PEM, c.leaf.CommonName, kubeconfig.Credentials{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
			return files{}, fmt.Errorf("write %s: %w", c.path, err)
		}
	}
	f.controllerManagerKubeconfig = clients[1].path
	f.schedulerKubeconfig = clients[2].path
	f.metricsServerKubeconfig = clients[3].path
	frontProxy, err := pki.EnsureNamedCA(filepath.Join(dir, frontProxyDir), frontProxyCAName)
	if err != nil {
		return files{}, err
	}
	f.frontProxyCA = filepath.Join(dir, frontProxyDir, pki.CACert)
	if f.proxyClientCert, f.proxyClientKey, err = frontProxy.Ensure(filepath.Join(dir, frontProxyDir), proxyClientPair, pki.Leaf{CommonName: proxyClientPair}); err != nil {
		return files{}, err
	}
	metrics := pki.Leaf{
		CommonName: metricsServerName,
		DNSNames:   []string{metricsServerName + ".kube-system.svc", metricsServerName + ".kube-system.svc." + cfg.Cluster.ClusterDomain},
		Server:     true,
	}
	if f.metricsServerCert, f.metricsServerKey, err = ca.Ensure(dir, metricsServerPair, metrics); err != nil {
		return files{}, err
	}
	for _, c := range []struct {
		pair      string
		cert, key *string
	}{{controllerManagerPair, &f.controllerManagerCert, &f.controllerManagerKey}, {schedulerPair, &f.schedulerCert, &f.schedulerKey}} {
		leaf := pki.Leaf{CommonName: c.pair, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true}
		if *c.cert, *c.key, err = ca.Ensure(dir, c.pair, leaf); err != nil {
			return files{}, err
		}
	}
	f.authnConfig = filepath.Join(dir, "authentication.yaml")
	if err := os.WriteFile(f.authnConfig, []byte(authnConfig), 0o600); err != nil {
		return files{}, err
	}
	f.schedulerConfig = filepath.Join(dir, schedulerConfigFile)
	return f, nil
}

// firstServiceIP is the kubernetes Service's ClusterIP: the range's first address.
func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ip := append(net.IP(nil), n.IP...)
	ip[len(ip)-1]++
	return ip, nil
}
