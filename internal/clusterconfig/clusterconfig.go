// Package clusterconfig holds the settings every node of a cluster must
// share (the pod and service networks, the cluster DNS address and domain):
// defaulted and validated once by the server, published in the cluster as
// the ConfigMap kube-system/skiff-cluster-config, and fetched from there by
// every agent when it joins (as kubeadm's nodes read kubeadm-config and k3s's
// agents ask their server). It does not own how a node uses them.
package clusterconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// Where the settings are published, and who may read them: nodes joining
// with the bootstrap token, and joined nodes.
const (
	ConfigMapName = "skiff-cluster-config"
	Namespace     = metav1.NamespaceSystem
	dataKey       = "cluster.json"
	readerRole    = "skiff:cluster-config-reader"
)

// Config is what the nodes of one cluster share.
type Config struct {
	// ClusterCIDR is the pod network, split into one podCIDR per node.
	ClusterCIDR string `json:"clusterCIDR"`
	// ServiceCIDR is where ClusterIPs are allocated.
	ServiceCIDR string `json:"serviceCIDR"`
	// ClusterDNS is the kube-dns Service's ClusterIP, inside ServiceCIDR:
	// the name server the kubelets write into pods' resolv.conf.
	ClusterDNS string `json:"clusterDNS"`
	// ClusterDomain is the DNS domain of Services and pods.
	ClusterDomain string `json:"clusterDomain"`
	// GatewayAddressPool, when set, is a CIDR each Gateway gets an address
	// of its own from; every node accepts the whole range as local (the
	// network must route it to the nodes). Empty: Gateways share the
	// nodes' addresses.
	GatewayAddressPool string `json:"gatewayAddressPool,omitempty"`
	// GatewayAPIChannel is the channel of the Gateway API CRDs the server
	// installs, "standard" (empty means it too) or "experimental"; the
	// proxies claim the experimental features only on the latter.
	GatewayAPIChannel string `json:"gatewayAPIChannel,omitempty"`
}

// The Gateway API channels GatewayAPIChannel names.
const (
	GatewayAPIStandard     = "standard"
	GatewayAPIExperimental = "experimental"
)

// Default is a fresh cluster's configuration.
func Default() Config {
	return Config{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"}
}

// Defaults fills the zero fields from Default; ClusterDNS defaults to the
// tenth address of ServiceCIDR (10.43.0.10 for 10.43.0.0/16).
func (c *Config) Defaults() {
	d := Default()
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = d.ClusterCIDR
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = d.ServiceCIDR
	}
	if c.ClusterDNS == "" {
		if ip, err := nthAddress(c.ServiceCIDR, 10); err == nil {
			c.ClusterDNS = ip.String()
		}
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = d.ClusterDomain
	}
}

// Validate names the first setting no cluster could run with, by its flag.
func (c Config) Validate() error {
	_, pods, err := net.ParseCIDR(c.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("--cluster-cidr %q is not a CIDR such as 10.42.0.0/16", c.ClusterCIDR)
	}
	_, services, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("--service-cidr %q is not a CIDR such as 10.43.0.0/16", c.ServiceCIDR)
	}
	if pods.Contains(services.IP) || services.Contains(pods.IP) {
		return fmt.Errorf("--cluster-cidr %s and --service-cidr %s overlap", c.ClusterCIDR, c.ServiceCIDR)
	}
	dns := net.ParseIP(c.ClusterDNS)
	if dns == nil {
		return fmt.Errorf("--cluster-dns %q is not an IP address", c.ClusterDNS)
	}
	if !services.Contains(dns) {
		return fmt.Errorf("--cluster-dns %s is outside --service-cidr %s: the kube-dns Service's ClusterIP must come from it", c.ClusterDNS, c.ServiceCIDR)
	}
	if errs := validation.IsDNS1123Subdomain(c.ClusterDomain); len(errs) > 0 {
		return fmt.Errorf("--cluster-domain %q: %s", c.ClusterDomain, errs[0])
	}
	if ch := c.GatewayAPIChannel; ch != "" && ch != GatewayAPIStandard && ch != GatewayAPIExperimental {
		return fmt.Errorf("--gateway-api-channel %q: want %s or %s", ch, GatewayAPIStandard, GatewayAPIExperimental)
	}
	if c.GatewayAddressPool != "" {
		_, pool, err := net.ParseCIDR(c.GatewayAddressPool)
		if err != nil {
			return fmt.Errorf("--gateway-address-pool %q is not a CIDR such as 10.44.0.0/24", c.GatewayAddressPool)
		}
		if pool.Contains(pods.IP) || pods.Contains(pool.IP) || pool.Contains(services.IP) || services.Contains(pool.IP) {
			return fmt.Errorf("--gateway-address-pool %s overlaps --cluster-cidr %s or --service-cidr %s", c.GatewayAddressPool, c.ClusterCIDR, c.ServiceCIDR)
		}
	}
	return nil
}

// nthAddress is the n-th address of cidr (its network address is the 0th).
func nthAddress(cidr string, n int64) (net.IP, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	base := ipnet.IP.To4()
	if base == nil {
		base = ipnet.IP.To16()
	}
	v := new(big.Int).Add(new(big.Int).SetBytes(base), big.NewInt(n))
	b := v.Bytes()
	ip := make(net.IP, len(base))
	copy(ip[len(ip)-len(b):], b)
	if !ipnet.Contains(ip) {
		return nil, fmt.Errorf("%s has fewer than %d addresses", cidr, n+1)
	}
	return ip, nil
}

// Publish writes c as the cluster's configuration, and the RBAC that lets
// joining and joined nodes read it. It is idempotent.
func Publish(ctx context.Context, client kubernetes.Interface, c Config) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: Namespace},
		Data:       map[string]string{dataKey: string(data)},
	}
	cms := client.CoreV1().ConfigMaps(Namespace)
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update ConfigMap %s/%s: %w", Namespace, ConfigMapName, err)
		}
	} else if err != nil {
		return fmt.Errorf("create ConfigMap %s/%s: %w", Namespace, ConfigMapName, err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: readerRole, Namespace: Namespace},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{ConfigMapName}, Verbs: []string{"get"},
		}},
	}
	if _, err := client.RbacV1().Roles(Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Role %s: %w", readerRole, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: readerRole, Namespace: Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: readerRole},
		Subjects: []rbacv1.Subject{
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:bootstrappers"},
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"},
		},
	}
	if _, err := client.RbacV1().RoleBindings(Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create RoleBinding %s: %w", readerRole, err)
	}
	return nil
}

// Fetch reads the cluster's configuration as Publish wrote it.
func Fetch(ctx context.Context, client kubernetes.Interface) (Config, error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		return Config{}, fmt.Errorf("read the cluster configuration (ConfigMap %s/%s): %w", Namespace, ConfigMapName, err)
	}
	return Decode([]byte(cm.Data[dataKey]))
}

// Decode parses a configuration as Publish writes it, and validates it.
func Decode(data []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("cluster configuration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("cluster configuration: %w", err)
	}
	return c, nil
}
