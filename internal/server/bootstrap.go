package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/controller/localpath"
	"github.com/skiffdev/skiff/internal/ingress"
	"github.com/skiffdev/skiff/internal/jointoken"
)

// bootstrap writes what skiff adds to a fresh cluster: the node join token
// (a bootstrap token, as kubeadm makes) and the RBAC bindings that let a node
// join with it and have its client certificate approved, and the default
// StorageClass (local-path). Each step is idempotent: it runs at every start.
func (s *Server) bootstrap(ctx context.Context, client kubernetes.Interface) error {
	token, err := ensureToken(s.Paths.Token, s.files.caCert)
	if err != nil {
		return err
	}
	if err := ensureServerToken(ctx, client, token); err != nil {
		return err
	}
	if err := s.publishServerBootstrap(ctx, client); err != nil {
		return err
	}
	// Nodes enforce NetworkPolicies (internal/agent/netpol) with their own
	// credentials; the Node authorizer lets them read neither policies nor
	// every namespace.
	netpolRole := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "skiff:network-policy"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces", "pods"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	// Every node's Ingress proxy (internal/ingress) serves every Ingress:
	// it reads them with the Services, EndpointSlices and TLS Secrets they
	// name (RBAC cannot narrow Secrets to a type), and writes their status
	// and Events.
	ingressRole := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "skiff:ingress"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "ingressclasses"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses/status"}, Verbs: []string{"update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"services", "secrets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch"}},
			// The Gateway API: Gateways and their routes, the namespaces
			// their listeners select, and the statuses.
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "udproutes", "referencegrants", "backendtlspolicies", "listenersets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status", "tlsroutes/status", "tcproutes/status", "udproutes/status", "backendtlspolicies/status", "listenersets/status"}, Verbs: []string{"update", "patch"}},
			// Namespaces for listeners' selectors; ConfigMaps for the CA
			// certificates of BackendTLSPolicies.
			{APIGroups: []string{""}, Resources: []string{"namespaces", "configmaps"}, Verbs: []string{"get", "list", "watch"}},
			// The experimental channel's XBackendTrafficPolicies.
			{APIGroups: []string{"gateway.networking.x-k8s.io"}, Resources: []string{"xbackendtrafficpolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"gateway.networking.x-k8s.io"}, Resources: []string{"xbackendtrafficpolicies/status"}, Verbs: []string{"update", "patch"}},
		},
	}
	// Every node's mesh proxy (internal/mesh) routes enrolled pods'
	// connections cluster-wide, enforces the mesh's policies, and asks the
	// mesh CA (internal/controller/meshca) for its pods' certificates with
	// CertificateSigningRequests (the Node authorizer already lets nodes
	// file them and write events), proven by service-account tokens the
	// Node authorizer limits to its own pods.
	meshRole := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "skiff:mesh"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			// Tokens of the mesh CA's audience (NodeRestriction's
			// ServiceAccountNodeAudienceRestriction): still only for the
			// service accounts of the node's own pods, bound to them.
			{APIGroups: []string{""}, Resources: []string{"mesh.skiff.dev"}, Verbs: []string{"request-serviceaccounts-token-audience"}},
			{APIGroups: []string{"mesh.skiff.dev"}, Resources: []string{"authorizationpolicies", "peerauthentications"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	// skiff owns these roles: a server of a newer version updates them.
	for _, role := range []*rbacv1.ClusterRole{netpolRole, ingressRole, meshRole} {
		roles := client.RbacV1().ClusterRoles()
		_, err := roles.Create(ctx, role, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var old *rbacv1.ClusterRole
			if old, err = roles.Get(ctx, role.Name, metav1.GetOptions{}); err == nil && !equality.Semantic.DeepEqual(old.Rules, role.Rules) {
				old.Rules = role.Rules
				_, err = roles.Update(ctx, old, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
		}
	}
	for _, b := range []struct{ name, role, kind, subject string }{
		{"skiff:kubelet-bootstrap", "system:node-bootstrapper", rbacv1.GroupKind, "system:bootstrappers"},
		{"skiff:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", rbacv1.GroupKind, "system:bootstrappers"},
		{"skiff:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", rbacv1.GroupKind, "system:nodes"},
		{"skiff:node-proxier", "system:node-proxier", rbacv1.GroupKind, "system:nodes"},
		{"skiff:kubelet-api-admin", "system:kubelet-api-admin", rbacv1.UserKind, "kube-apiserver-kubelet-client"},
		{"skiff:network-policy", "skiff:network-policy", rbacv1.GroupKind, "system:nodes"},
		{"skiff:ingress", "skiff:ingress", rbacv1.GroupKind, "system:nodes"},
		{"skiff:mesh", "skiff:mesh", rbacv1.GroupKind, "system:nodes"},
	} {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: b.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: b.kind, Name: b.subject}},
		}
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", b.name, err)
		}
	}
	// The IngressClass of the nodes' proxies, the default one; a class an
	// administrator changed is left as it is.
	if _, err := client.NetworkingV1().IngressClasses().Create(ctx, ingressClass(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create IngressClass %s: %w", ingress.ClassName, err)
	}
	// The settings every node shares; agents read them when they join.
	if err := clusterconfig.Publish(ctx, client, s.cfg.Cluster); err != nil {
		return err
	}
	// The built-in local-path provisioner's class, the default one; a class
	// an administrator changed or made non-default is left as it is.
	if _, err := client.StorageV1().StorageClasses().Create(ctx, localpath.StorageClass(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create StorageClass %s: %w", localpath.ClassName, err)
	}
	return nil
}

// ensureServerToken makes DATA/token a bootstrap token of the server token's
// group: it joins nodes, and servers too (it reads the server bootstrap
// data). A token of an earlier version gets the group.
func ensureServerToken(ctx context.Context, client kubernetes.Interface, token jointoken.Token) error {
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	want := bootstrapSecret(token, "skiff server token (DATA/token): joins nodes and servers")
	want.StringData[bootstrapapi.BootstrapTokenExtraGroupsKey] = serverTokenGroup
	_, err := secrets.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var old *corev1.Secret
		if old, err = secrets.Get(ctx, want.Name, metav1.GetOptions{}); err == nil && string(old.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]) != serverTokenGroup {
			old.StringData = map[string]string{bootstrapapi.BootstrapTokenExtraGroupsKey: serverTokenGroup}
			_, err = secrets.Update(ctx, old, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("create the server token's Secret: %w", err)
	}
	return nil
}

// ensureToken returns the join token stored at path, creating one if there
// is none; the file always names the current CA's hash.
func ensureToken(path, caFile string) (jointoken.Token, error) {
	hash, err := jointoken.HashFile(caFile)
	if err != nil {
		return jointoken.Token{}, err
	}
	t := jointoken.Token{ID: randomString(6), Secret: randomString(16)}
	if data, err := os.ReadFile(path); err == nil {
		if old, err := jointoken.Parse(string(data)); err == nil {
			t = old
		}
	}
	t.CAHash = hash
	return t, os.WriteFile(path, []byte(t.String()+"\n"), 0o600)
}

func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// ingressClass is the class "skiff", marked default: an Ingress without a
// class is served by the nodes' proxies, as k3s's Traefik serves them.
func ingressClass() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ingress.ClassName,
			Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"},
		},
		Spec: networkingv1.IngressClassSpec{Controller: ingress.ControllerName},
	}
}
