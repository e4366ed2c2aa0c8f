package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPrometheusMetrics: the /metrics endpoints Prometheus scrapes (the
// API server's, which carries the control plane's, and the kubelet's,
// which carries the node's) answer a service account that RBAC lets read
// them (system:monitoring, and nodes/metrics for the kubelet, as
// Prometheus's own documentation binds it) with upstream's metric names,
// and refuse one it does not (403).
func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	c := the.client
	for _, name := range []string{"prometheus", "nobody"} {
		if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-prometheus"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes/metrics"}, Verbs: []string{"get"}},
		},
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{}) })
	for _, r := range []string{"system:monitoring", role.Name} {
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + strings.ReplaceAll(r, ":", "-")},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.RbacV1().ClusterRoleBindings().Delete(context.Background(), b.Name, metav1.DeleteOptions{})
		})
	}
	token := func(sa string) string {
		tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	node, err := c.CoreV1().Nodes().Get(ctx, the.nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodeIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	// As a scrape configuration does for the kubelets' own certificates.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test
	get := func(url, bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error() // not serving (yet): the callers wait or report it
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	endpoints := map[string][]string{
		fmt.Sprintf("https://127.0.0.1:%d/metrics", the.port): {
			"apiserver_request_total", "etcd_request_duration_seconds", // the API server
			"workqueue_adds_total", "node_collector_evictions_total", // the controller manager
			"scheduler_pending_pods",                                         // the scheduler
			"coredns_dns_requests_total",                                     // the cluster DNS, under CoreDNS's names
			"etcd_server_has_leader", "etcd_disk_wal_fsync_duration_seconds", // the embedded etcd
			`workqueue_adds_total{name="local-path"}`, `workqueue_adds_total{name="service-lb"}`, // skiff's controllers
			"skiff_controller_syncs_total", // ingress-lb
		},
		"https://" + net.JoinHostPort(nodeIP, strconv.Itoa(the.kubelet)) + "/metrics": {
			"kubelet_running_pods", "kubelet_pod_start_duration_seconds", // the kubelet
			"kubeproxy_sync_proxy_rules_duration_seconds", // kube-proxy
			"skiff_ingress_active_connections",            // the ingress proxy
		},
	}
	// One question to the cluster DNS (the server's, at its default port
	// on the node's address), so that its counters exist.
	q := new(dns.Msg)
	q.SetQuestion("kubernetes.default.svc.cluster.local.", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, net.JoinHostPort(nodeIP, "10053")); err != nil {
		t.Fatalf("cluster DNS at %s:10053: %v", nodeIP, err)
	}
	allowed, refused := token("prometheus"), token("nobody")
	for url, names := range endpoints {
		eventually(t, time.Minute, url+" for a system:monitoring service account", func() (bool, string) {
			code, body := get(url, allowed)
			if code != http.StatusOK {
				return false, fmt.Sprintf("status %d: %.200s", code, body)
			}
			for _, n := range names {
				// A name with labels is looked for as a series.
				if !strings.Contains(body, "\n# TYPE "+n+" ") && (!strings.Contains(n, "{") || !strings.Contains(body, "\n"+n+" ")) {
					return false, "no metric " + n
				}
			}
			return true, ""
		})
		if code, body := get(url, refused); code != http.StatusForbidden {
			t.Errorf("%s for a service account without a role: status %d, want 403: %.200s", url, code, body)
		}
	}
}
