package upstream

import (
	"context"
	"fmt"
	"maps"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// accessName names a cluster's ClusterRole and ClusterRoleBinding.
func accessName(cluster string) string { return "skiff:fleet:cluster:" + cluster }

// CreateAccess prepares the upstream for a cluster that is about to join:
// the Cluster object (with labels), its execution namespace, the agent's
// service account there and what it may do (read and update its Works and
// its own Cluster, renew its heartbeat Lease, renew its own token), and
// returns a token of that account valid for ttl, for the join. A cluster
// that was revoked gets a new account: its old tokens stay invalid.
func CreateAccess(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, name string, labels map[string]string, ttl time.Duration) (string, error) {
	if err := fleet.ValidateClusterName(name); err != nil {
		return "", err
	}
	if ttl < 10*time.Minute {
		return "", fmt.Errorf("token lifetime %s: the API server issues tokens of 10m or more", ttl)
	}
	ns := fleet.ExecutionNamespace(name)
	clusters := dyn.Resource(v1alpha1.Clusters)
	existing, err := clusters.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"syncMode": string(v1alpha1.Pull)}}}
		u.SetAPIVersion(v1alpha1.GroupVersion.String())
		u.SetKind("Cluster")
		u.SetName(name)
		u.SetLabels(labels)
		if _, err := clusters.Create(ctx, u, metav1.CreateOptions{FieldManager: fleet.FieldManager}); err != nil {
			return "", fmt.Errorf("create cluster %s: %w", name, err)
		}
	case err != nil:
		return "", err
	case existing.GetDeletionTimestamp() != nil:
		return "", fmt.Errorf("cluster %s is being deleted; try again in a moment", name)
	case len(labels) > 0:
		l := existing.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, labels)
		existing.SetLabels(l)
		if _, err := clusters.Update(ctx, existing, metav1.UpdateOptions{FieldManager: fleet.FieldManager}); err != nil {
			return "", err
		}
	}
	objs := []struct {
		what   string
		create func() error
	}{
		{"namespace", func() error {
			_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: ns, Labels: map[string]string{fleet.LabelCluster: name},
			}}, metav1.CreateOptions{})
			return err
		}},
		{"service account", func() error {
			_, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fleet.AgentAccount}}, metav1.CreateOptions{})
			return err
		}},
		{"role", func() error {
			role := &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: fleet.AgentAccount},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{v1alpha1.Group}, Resources: []string{"works"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
					{APIGroups: []string{v1alpha1.Group}, Resources: []string{"works/status"}, Verbs: []string{"get", "update", "patch"}},
					{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
					{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
					{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{fleet.AgentAccount}, Verbs: []string{"create"}},
					// The cluster's exports (multi-cluster services).
					{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
				},
			}
			_, err := kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// A cluster joined by an older upstream gets today's rules.
				_, err = kube.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{})
			}
			return err
		}},
		{"role binding", func() error {
			_, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: fleet.AgentAccount},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: fleet.AgentAccount},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: fleet.AgentAccount}},
			}, metav1.CreateOptions{})
			return err
		}},
		{"cluster role", func() error {
			_, err := kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: accessName(name), Labels: map[string]string{fleet.LabelCluster: name}},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{v1alpha1.Group}, Resources: []string{"clusters", "clusters/status"}, ResourceNames: []string{name}, Verbs: []string{"get", "update", "patch"}},
				},
			}, metav1.CreateOptions{})
			return err
		}},
		{"cluster role binding", func() error {
			_, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: accessName(name), Labels: map[string]string{fleet.LabelCluster: name}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: accessName(name)},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: fleet.AgentAccount}},
			}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, o := range objs {
		if err := o.create(); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("create the %s of cluster %s: %w", o.what, name, err)
		}
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, fleet.AgentAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(ttl / time.Second))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create a token for cluster %s: %w", name, err)
	}
	return tr.Status.Token, nil
}

// RevokeAccess takes a cluster's agent's access away: its service account
// goes (every token of it stops authenticating at once) and so do its
// role bindings. The Cluster stays, and turns NotReady when heartbeats
// stop; `skiff fleet token create` lets it join again.
func RevokeAccess(ctx context.Context, kube kubernetes.Interface, name string) error {
	ns := fleet.ExecutionNamespace(name)
	for _, del := range []func() error{
		func() error {
			return kube.CoreV1().ServiceAccounts(ns).Delete(ctx, fleet.AgentAccount, metav1.DeleteOptions{})
		},
		func() error {
			return kube.RbacV1().RoleBindings(ns).Delete(ctx, fleet.AgentAccount, metav1.DeleteOptions{})
		},
		func() error {
			return kube.RbacV1().ClusterRoleBindings().Delete(ctx, accessName(name), metav1.DeleteOptions{})
		},
		func() error {
			return kube.RbacV1().ClusterRoles().Delete(ctx, accessName(name), metav1.DeleteOptions{})
		},
	} {
		if err := del(); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("revoke cluster %s: %w", name, err)
		}
	}
	return nil
}
