package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/server"
)

// dashboardAdmin is the service account `skiff dashboard` mints tokens for
// unless told another: cluster-admin, as the admin kubeconfig it is run with.
const dashboardAdmin = "kube-system/skiff-dashboard-admin"

func newDashboardCommand() *cobra.Command {
	var (
		dataDir, kubeconfig, account string
		duration                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print a login URL for the web dashboard with a short-lived service account token",
		Long: `Print the URL of the web dashboard (/dashboard/ on the server's HTTPS port) with a
short-lived token for a service account (TokenRequest) to log in with.

By default the account is ` + dashboardAdmin + `, bound to cluster-admin (created on first
use). With --service-account NAMESPACE/NAME the token is for that existing account, and the
dashboard can see and change exactly what RBAC allows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				kubeconfig = server.PathsIn(dataDir).Kubeconfig
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("the admin kubeconfig: %w", err)
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ns, name, ok := strings.Cut(account, "/")
			if !ok || ns == "" || name == "" {
				return fmt.Errorf("--service-account %q: want NAMESPACE/NAME", account)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if account == dashboardAdmin {
				if err := ensureDashboardAdmin(ctx, client, ns, name); err != nil {
					return err
				}
			}
			seconds := int64(duration / time.Second)
			tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("token for service account %s: %w", account, err)
			}
			base, err := url.Parse(cfg.Host)
			if err != nil {
				return fmt.Errorf("the kubeconfig's server %q: %w", cfg.Host, err)
			}
			base.Path = "/dashboard/"
			base.Fragment = "token=" + tr.Status.Token
			fmt.Fprintf(cmd.ErrOrStderr(), "Log in as service account %s until %s (the server's CA is %s):\n",
				account, tr.Status.ExpirationTimestamp.Local().Format(time.DateTime), server.PathsIn(dataDir).CACert)
			fmt.Fprintln(cmd.OutOrStdout(), base.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "data directory of the server")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to mint the token with (default: the data dir's admin kubeconfig)")
	cmd.Flags().StringVar(&account, "service-account", dashboardAdmin, "NAMESPACE/NAME of the service account the token is for")
	cmd.Flags().DurationVar(&duration, "duration", time.Hour, "how long the token is valid (at least 10m)")
	return cmd
}

// ensureDashboardAdmin creates the default service account and its
// cluster-admin binding when they are missing.
func ensureDashboardAdmin(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "skiff"}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account %s/%s: %w", ns, name, err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster role binding %s: %w", name, err)
	}
	return nil
}
