package apiserver

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// testServiceAccountAuth: with a service account's token (TokenRequest),
// kubectl auth whoami names the service account and kubectl auth can-i
// (--list and single questions) answers what its Role grants, no more.
func testServiceAccountAuth(t *testing.T, srv *e2eutil.Server, k e2eutil.Kubectl) {
	ctx := e2eutil.Context(t, time.Minute)
	c := srv.Client()
	ns := "auth-sa"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "read-pods"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-reads-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-pods"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reader", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "reader.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: srv.URL, CertificateAuthority: server.PathsIn(srv.DataDir).CACert}
	cfg.AuthInfos["reader"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["reader"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "reader", Namespace: ns}
	cfg.CurrentContext = "reader"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}

	who := k.Run(t, kubeconfig, "", "auth", "whoami")
	if who.Code != 0 || !regexp.MustCompile(`Username\s+system:serviceaccount:auth-sa:reader`).MatchString(who.Stdout) ||
		!strings.Contains(who.Stdout, "system:serviceaccounts:auth-sa") {
		t.Errorf("kubectl auth whoami: exit %d\n%s%s", who.Code, who.Stdout, who.Stderr)
	}
	list := k.Run(t, kubeconfig, "", "auth", "can-i", "--list")
	if list.Code != 0 {
		t.Fatalf("kubectl auth can-i --list: %s", list.Stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^pods\s+\[\]\s+\[\]\s+\[get list watch\]`),
		regexp.MustCompile(`(?m)^configmaps\s+\[\]\s+\[\]\s+\[get list watch\]`),
		regexp.MustCompile(`(?m)^selfsubjectreviews\.authentication\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]`),
	} {
		if !want.MatchString(list.Stdout) {
			t.Errorf("can-i --list lacks %s:\n%s", want, list.Stdout)
		}
	}
	if regexp.MustCompile(`(?m)^secrets\s`).MatchString(list.Stdout) {
		t.Errorf("can-i --list grants secrets:\n%s", list.Stdout)
	}
	for _, q := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "pods"}, "yes"},
		{[]string{"create", "pods"}, "no"},
		{[]string{"get", "secrets"}, "no"},
		{[]string{"list", "pods", "-n", "default"}, "no"},
	} {
		r := k.Run(t, kubeconfig, "", append([]string{"auth", "can-i"}, q.args...)...)
		if strings.TrimSpace(r.Stdout) != q.want {
			t.Errorf("kubectl auth can-i %v: %q, want %q (%s)", q.args, r.Stdout, q.want, r.Stderr)
		}
	}
}

func ptrInt64(v int64) *int64 { return &v }
