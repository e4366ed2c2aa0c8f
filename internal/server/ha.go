package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/storage"
)

// Highly available servers. The first server of an HA cluster starts with
// --cluster-init: its embedded etcd serves its peers and remote clients
// with TLS on the advertise address (storage.Member), under an etcd CA of
// its own (so that a node's certificate, signed by the cluster CA, cannot
// open etcd). It publishes what every server must share, the server
// bootstrap data, as a Secret only the server token may read. A server
// started with --server URL --token-file FILE reads that data with the
// token, then adds its etcd to the cluster as a member (or, with an external
// datastore, shares it). Every API server serves; the controllers and the
// scheduler lead from one server at a time through their Leases.

const (
	// serverBootstrapSecret holds the server bootstrap data in kube-system.
	serverBootstrapSecret = "skiff-server-bootstrap"
	// serverTokenGroup is the extra group of the server token (DATA/token):
	// the only bootstrap tokens that may read serverBootstrapSecret. Tokens
	// of `skiff token create` join agents only.
	serverTokenGroup = "system:bootstrappers:skiff:servers"
	// serverBootstrapRole lets serverTokenGroup read it.
	serverBootstrapRole = "skiff:server-bootstrap"
)

// sharedFiles are the server bootstrap data: the files of the data dir every
// server of a cluster must hold alike (the CAs and their keys, the
// service-account key, the Secrets' encryption keys and the token), as
// paths relative to the data dir.
var sharedFiles = []string{
	"tls/" + pki.CACert, "tls/" + pki.CAKey, "tls/" + pki.CACross,
	"tls/" + pki.ServiceAccount, "tls/" + pki.ServiceAccountP,
	"tls/etcd/" + pki.CACert, "tls/etcd/" + pki.CAKey, "tls/etcd/" + pki.CACross,
	"tls/" + frontProxyDir + "/" + pki.CACert, "tls/" + frontProxyDir + "/" + pki.CAKey,
	"tls/" + meshDir + "/" + pki.CACert, "tls/" + meshDir + "/" + pki.CAKey,
	encryptionConfigFile,
	"token",
}

// secretKey is the Secret data key of a shared file (keys may hold no "/").
func secretKey(rel string) string { return strings.ReplaceAll(rel, "/", "_") }

// haMode reports whether this server's embedded etcd is a member of a
// cluster of servers: asked for on the command line, or found in the data
// dir (the etcd CA exists) at a restart.
func (c *Config) haMode() bool {
	if len(c.DatastoreEndpoints) > 0 {
		return false
	}
	return c.ClusterInit || c.JoinURL != "" || c.Paths().HA()
}

// HA reports whether the data dir is an HA server's (its etcd CA exists).
func (p Paths) HA() bool {
	_, err := os.Stat(filepath.Join(p.EtcdTLSDir, pki.CACert))
	return err == nil
}

// checkHA refuses contradictory HA flags.
func (c *Config) checkHA() error {
	switch {
	case c.ClusterInit && c.JoinURL != "":
		return errors.New("--cluster-init starts a new cluster and --server joins one: give one of them")
	case c.ClusterInit && len(c.DatastoreEndpoints) > 0:
		return errors.New("--cluster-init makes the embedded etcd a cluster; servers sharing --datastore-endpoint need none (start the others with --server and --token-file)")
	case c.JoinURL != "" && c.JoinToken == "":
		return errors.New("--server needs --token-file: the server token, DATA/token of a server of the cluster")
	}
	if c.JoinURL != "" {
		u, err := url.Parse(c.JoinURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--server %q: expected https://HOST:PORT", c.JoinURL)
		}
	}
	return nil
}

// advertiseIP is the address other servers and nodes reach this one at.
func (c *Config) advertiseIP() (string, error) {
	if c.AdvertiseAddress != "" {
		return c.AdvertiseAddress, nil
	}
	ip, err := utilnet.ChooseHostInterface()
	if err != nil {
		return "", fmt.Errorf("find this host's address (give --advertise-address): %w", err)
	}
	return ip.String(), nil
}

// etcdMember prepares the embedded etcd's membership in a cluster of
// servers: its CA (made by the first server, read from the bootstrap data
// by the others), its certificate and its name.
func etcdMember(cfg Config) (*storage.Member, error) {
	addr, err := cfg.advertiseIP()
	if err != nil {
		return nil, err
	}
	paths := cfg.Paths()
	dir := paths.EtcdTLSDir
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return nil, err
	}
	// The peers check a certificate's addresses against the address a
	// connection comes from: the advertise address, or loopback.
	cert, key, err := ca.Ensure(dir, etcdMemberPair, pki.Leaf{
		CommonName: "skiff-etcd-member",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.ParseIP(addr), net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		Server:     true,
	})
	if err != nil {
		return nil, err
	}
	name, err := memberName(paths.EtcdName)
	if err != nil {
		return nil, err
	}
	m := &storage.Member{
		Name:    name,
		Address: addr,
		TLS:     storage.TLSFiles{CA: filepath.Join(dir, pki.CACert), Cert: cert, Key: key},
	}
	if cfg.JoinURL != "" {
		u, _ := url.Parse(cfg.JoinURL)
		m.Join = []string{storage.ClientURL(u.Hostname())}
	}
	return m, nil
}

// memberName is the etcd member name kept at path: the host name and a
// random suffix (servers may share a host name), made at the first start.
func memberName(path string) (string, error) {
	if data, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(data)) != "" {
		return strings.TrimSpace(string(data)), nil
	}
	name := sliceName("", Hostname())[1:] + "-" + randomString(8)
	return name, os.WriteFile(path, []byte(name+"\n"), 0o600)
}

// joinCluster reads the server bootstrap data from the server at
// cfg.JoinURL with the server token into the data dir, once: a data dir
// that has the cluster CA already joined before.
func joinCluster(ctx context.Context, cfg Config) error {
	paths := cfg.Paths()
	if _, err := os.Stat(paths.CACert); err == nil {
		return nil
	}
	token, err := jointoken.Parse(cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("%w: --token-file: %v", component.ErrConfig, err)
	}
	caPEM, err := discoverCA(ctx, cfg.JoinURL, token)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(&rest.Config{
		Host:            cfg.JoinURL,
		BearerToken:     token.Bootstrap(),
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		UserAgent:       "skiff-server-join",
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return err
	}
	secret, err := readBootstrapData(ctx, client, cfg.JoinURL)
	if err != nil {
		return err
	}
	if err := checkSameCluster(ctx, client, cfg.Cluster); err != nil {
		return err
	}
	// A server that encrypted alone would write Secrets the others cannot
	// read; one that did not would write them in plain text.
	encrypts := false
	if data := secret.Data[secretKey(encryptionConfigFile)]; len(data) > 0 {
		st, err := secretsencrypt.Parse(data)
		if err != nil {
			return fmt.Errorf("the cluster's encryption configuration: %w", err)
		}
		encrypts = st.Enabled
	}
	if encrypts != !cfg.DisableSecretsEncryption {
		return fmt.Errorf("%w: this server's --secrets-encryption=%t differs from the cluster's (%t): every server must encrypt Secrets alike", component.ErrConfig, !cfg.DisableSecretsEncryption, encrypts)
	}
	for _, rel := range sharedFiles {
		data, ok := secret.Data[secretKey(rel)]
		if !ok {
			continue // an external datastore's cluster has no etcd CA
		}
		path := filepath.Join(paths.DataDir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	if _, ok := secret.Data[secretKey("tls/etcd/"+pki.CACert)]; !ok && len(cfg.DatastoreEndpoints) == 0 {
		return fmt.Errorf("%w: the cluster at %s shares an external etcd: start this server with the same --datastore-endpoint", component.ErrConfig, cfg.JoinURL)
	}
	return nil
}

// discoverCA finds the cluster CA at url through the token's hash,
// waiting up to two minutes for a server that is still starting.
func discoverCA(ctx context.Context, url string, token jointoken.Token) ([]byte, error) {
	if token.CAHash == "" {
		return nil, fmt.Errorf("%w: the token names no CA hash: give the whole server token (K10<hash>::<id>.<secret>, DATA/token of a server)", component.ErrConfig)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		caPEM, err := jointoken.DiscoverCA(url, token)
		var netErr net.Error
		if err == nil || !errors.As(err, &netErr) && !strings.Contains(err.Error(), "connection refused") || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("discover the cluster CA at %s: %w", url, err)
			}
			return caPEM, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// readBootstrapData reads the server bootstrap Secret, giving a server that
// has just started a minute to publish it.
func readBootstrapData(ctx context.Context, client kubernetes.Interface, url string) (*corev1.Secret, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		secret, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, serverBootstrapSecret, metav1.GetOptions{})
		switch {
		case err == nil:
			return secret, nil
		case apierrors.IsUnauthorized(err):
			return nil, fmt.Errorf("%w: the server at %s refuses the token (%v): it has expired, was deleted, or is not this cluster's", component.ErrConfig, url, err)
		case apierrors.IsForbidden(err):
			return nil, fmt.Errorf("%w: the token may join agents only: a server joins with the server token, DATA/token of a server of the cluster (%v)", component.ErrConfig, err)
		case time.Now().After(deadline) && apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%w: the server at %s publishes no server bootstrap data: start the cluster's first server with --cluster-init (or with --datastore-endpoint)", component.ErrConfig, url)
		case time.Now().After(deadline):
			return nil, fmt.Errorf("read the server bootstrap data from %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// checkSameCluster refuses a server whose cluster settings (networks, DNS)
// differ from those the cluster publishes: every server must agree.
func checkSameCluster(ctx context.Context, client kubernetes.Interface, own clusterconfig.Config) error {
	theirs, err := clusterconfig.Fetch(ctx, client)
	if err != nil {
		return fmt.Errorf("read the cluster's settings: %w", err)
	}
	own.GatewayAddressPool, theirs.GatewayAddressPool = "", ""
	if own != theirs {
		return fmt.Errorf("%w: this server's cluster settings %+v differ from the cluster's %+v: start it with the same --cluster-cidr, --service-cidr, --cluster-dns, --cluster-domain and --gateway-api-channel", component.ErrConfig, own, theirs)
	}
	return nil
}

// caFiles are the shared files that change with `skiff certificate
// rotate-ca`, for each CA (cluster, etcd).
var caFiles = [][]string{
	{"tls/" + pki.CACert, "tls/" + pki.CAKey, "tls/" + pki.CACross},
	{"tls/etcd/" + pki.CACert, "tls/etcd/" + pki.CAKey, "tls/etcd/" + pki.CACross},
}

// sharesBootstrap reports whether this server is one of several: its
// embedded etcd is a member of a cluster, or it shares an external etcd.
func (c *Config) sharesBootstrap() bool {
	return c.haMode() || len(c.DatastoreEndpoints) > 0
}

// publishServerBootstrap writes the server bootstrap data, once, and lets
// the server token read it; the server token gets its group. With a lone
// embedded etcd there is nothing to join, and nothing is published. A
// server that starts with a CA rotated from the published one (`skiff
// certificate rotate-ca`) publishes it: the other servers pull it.
func (s *Server) publishServerBootstrap(ctx context.Context, client kubernetes.Interface) error {
	if !s.cfg.sharesBootstrap() {
		return nil
	}
	if err := s.publishRotatedCA(ctx, client); err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapSecret, Namespace: metav1.NamespaceSystem},
		Data:       map[string][]byte{},
	}
	for _, rel := range sharedFiles {
		data, err := os.ReadFile(filepath.Join(s.Paths.DataDir, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		secret.Data[secretKey(rel)] = data
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Secret %s: %w", serverBootstrapSecret, err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapRole, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{serverBootstrapSecret}, Verbs: []string{"get"},
		}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Role %s: %w", serverBootstrapRole, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapRole, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: serverBootstrapRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: serverTokenGroup}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create RoleBinding %s: %w", serverBootstrapRole, err)
	}
	return nil
}

// ResetMembership makes the stopped HA server of cfg's data dir the only
// member of its etcd cluster, keeping every object: the way back when a
// majority of the servers is lost for good. The others join again with
// their DATA/etcd deleted.
func ResetMembership(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	paths := cfg.Paths()
	switch {
	case len(cfg.DatastoreEndpoints) > 0:
		return fmt.Errorf("%w: --cluster-reset resets the embedded etcd; an external etcd has its own tools", component.ErrConfig)
	case !paths.HA():
		return fmt.Errorf("%w: --cluster-reset without --cluster-reset-restore-path resets the membership of HA servers; the etcd of %s is a lone member already", component.ErrConfig, paths.DataDir)
	}
	if err := refuseRunning(paths); err != nil {
		return err
	}
	cfg.ClusterInit, cfg.JoinURL = false, ""
	m, err := etcdMember(cfg)
	if err != nil {
		return err
	}
	store, err := storage.Start(ctx, storage.Config{DataDir: paths.Etcd, Member: m, ForceNewCluster: true, Log: cfg.Log})
	if err != nil {
		return err
	}
	store.Close()
	return nil
}

// encryptionConfigFile is Paths.EncryptionConfig, relative to the data dir
// (one of sharedFiles).
const encryptionConfigFile = "cred/encryption-config.yaml"

// publishRotatedCA updates the CA files of the server bootstrap data with
// this server's where they are a rotation of the published ones.
func (s *Server) publishRotatedCA(ctx context.Context, client kubernetes.Interface) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
		secret, err := secrets.Get(ctx, serverBootstrapSecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // created below
		}
		if err != nil {
			return err
		}
		changed := false
		for _, files := range caFiles {
			local, err := os.ReadFile(filepath.Join(s.Paths.DataDir, files[0]))
			if err != nil || !pki.Succeeds(local, secret.Data[secretKey(files[0])]) {
				continue
			}
			for _, rel := range files {
				data, err := os.ReadFile(filepath.Join(s.Paths.DataDir, rel))
				if err != nil {
					return err
				}
				secret.Data[secretKey(rel)] = data
			}
			changed = true
		}
		if !changed {
			return nil
		}
		if _, err := secrets.Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			return err
		}
		s.cfg.Log.Info("published this server's rotated CA to the other servers")
		return nil
	})
}

// syncServerBootstrap keeps this server's encryption configuration and CAs
// those of the server bootstrap data, where `skiff secrets-encrypt
// rotate-keys` on any server publishes each step, and a server restarted
// after `skiff certificate rotate-ca` its new CA. The API server reloads
// the encryption configuration and its client CA bundle within seconds;
// a restart reissues the certificates. It polls every five seconds until
// ctx ends.
func (s *Server) syncServerBootstrap(ctx context.Context, client kubernetes.Interface) error {
	for {
		secret, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, serverBootstrapSecret, metav1.GetOptions{})
		if err == nil && s.files.encryption {
			err = s.pullEncryptionConfig(secret)
		}
		if err == nil {
			err = s.pullRotatedCA(secret)
		}
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("server bootstrap data of the cluster", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// pullRotatedCA writes the CA files of the server bootstrap data where
// they are a rotation of this server's.
func (s *Server) pullRotatedCA(secret *corev1.Secret) error {
	for _, files := range caFiles {
		local, err := os.ReadFile(filepath.Join(s.Paths.DataDir, files[0]))
		if err != nil || !pki.Succeeds(secret.Data[secretKey(files[0])], local) {
			continue
		}
		// The cross-signed certificate and the key first: the bundle
		// written last is what marks the rotation as taken.
		for _, rel := range []string{files[2], files[1], files[0]} {
			if err := pki.WriteFile(filepath.Join(s.Paths.DataDir, rel), secret.Data[secretKey(rel)], 0o600); err != nil {
				return err
			}
		}
		dir := filepath.Dir(filepath.Join(s.Paths.DataDir, files[0]))
		ca, err := pki.LoadCA(dir)
		if err != nil {
			return err
		}
		if dir == s.Paths.TLSDir {
			// The controller manager signs with the new key from now on.
			if _, err := ca.WriteSigner(dir); err != nil {
				return err
			}
		}
		s.cfg.Log.Info("CA rotated by another server taken; restart this server to reissue its certificates", "ca", files[0])
	}
	return nil
}

func (s *Server) pullEncryptionConfig(secret *corev1.Secret) error {
	data := secret.Data[secretKey(encryptionConfigFile)]
	if len(data) == 0 {
		return nil
	}
	if local, err := os.ReadFile(s.Paths.EncryptionConfig); err == nil && bytes.Equal(local, data) {
		return nil
	}
	st, err := secretsencrypt.Parse(data)
	if err != nil {
		return fmt.Errorf("the cluster's encryption configuration: %w", err)
	}
	if _, err := secretsencrypt.Write(s.Paths.EncryptionConfig, st); err != nil {
		return err
	}
	s.cfg.Log.Info("encryption configuration updated from the cluster's", "stage", st.Stage(), "primary", st.Keys[0].Name)
	return nil
}

// PublishEncryptionConfig hands an encryption configuration to every HA
// server (they pull it from the server bootstrap data).
func PublishEncryptionConfig(ctx context.Context, client kubernetes.Interface, data []byte) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
		secret, err := secrets.Get(ctx, serverBootstrapSecret, metav1.GetOptions{})
		if err != nil {
			return err
		}
		secret.Data[secretKey(encryptionConfigFile)] = data
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
		return err
	})
}

// APIServerClients are clients of each API server of the cluster (the
// kubernetes Service's endpoints), with cfg's credentials.
func APIServerClients(ctx context.Context, cfg *rest.Config) ([]kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	list, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=kubernetes",
	})
	if err != nil {
		return nil, fmt.Errorf("list the API servers: %w", err)
	}
	var out []kubernetes.Interface
	for _, slice := range list.Items {
		var port int32
		for _, p := range slice.Ports {
			if p.Name != nil && *p.Name == "https" && p.Port != nil {
				port = *p.Port
			}
		}
		for _, e := range slice.Endpoints {
			for _, a := range e.Addresses {
				rc := rest.CopyConfig(cfg)
				rc.Host = "https://" + net.JoinHostPort(a, strconv.Itoa(int(port)))
				c, err := kubernetes.NewForConfig(rc)
				if err != nil {
					return nil, err
				}
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the kubernetes Service lists no API server")
	}
	return out, nil
}
