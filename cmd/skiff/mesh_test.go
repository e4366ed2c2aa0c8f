package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/mesh"
	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/mesh/authz"
)

func TestPrintMeshStatus(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	rows := []mesh.WorkloadStatus{
		{Namespace: "shop", Workload: "web", Pods: 2, Ready: 2, Identity: "spiffe://cluster.local/ns/shop/sa/web",
			Expiry: now.Add(23*time.Hour + 30*time.Minute), MTLS: authz.ModeStrict, AuthzPolicies: 2},
		{Namespace: "shop", Workload: "db-0", Pods: 1, Pending: 1, Identity: "spiffe://cluster.local/ns/shop/sa/db", MTLS: authz.ModePermissive},
		{Namespace: "shop", Workload: "cron", Pods: 1, Identity: "spiffe://cluster.local/ns/shop/sa/cron", Problem: "signer unavailable", MTLS: authz.ModeDisable},
		{Namespace: "shop", Workload: "old", Pods: 1, Ready: 1, Identity: "spiffe://cluster.local/ns/shop/sa/old", Expiry: now.Add(-time.Minute),
			Problem: "certificate of pod old expired", MTLS: authz.ModePermissive},
	}
	for _, tc := range []struct {
		output string
		want   string
	}{{
		output: "",
		want: `NAMESPACE  WORKLOAD  PODS  IDENTITY                                CERT EXPIRES  MTLS        AUTHZ POLICIES
shop       web       2/2   spiffe://cluster.local/ns/shop/sa/web   23h           STRICT      2
shop       db-0      0/1   spiffe://cluster.local/ns/shop/sa/db    Pending       PERMISSIVE  0
shop       cron      0/1   spiffe://cluster.local/ns/shop/sa/cron  <unknown>     DISABLE     0
shop       old       1/1   spiffe://cluster.local/ns/shop/sa/old   <expired>     PERMISSIVE  0
`,
	}, {
		output: "wide",
		want: `NAMESPACE  WORKLOAD  PODS  IDENTITY                                CERT EXPIRES  MTLS        AUTHZ POLICIES  PROBLEM
shop       web       2/2   spiffe://cluster.local/ns/shop/sa/web   23h           STRICT      2               <none>
shop       db-0      0/1   spiffe://cluster.local/ns/shop/sa/db    Pending       PERMISSIVE  0               <none>
shop       cron      0/1   spiffe://cluster.local/ns/shop/sa/cron  <unknown>     DISABLE     0               signer unavailable
shop       old       1/1   spiffe://cluster.local/ns/shop/sa/old   <expired>     PERMISSIVE  0               certificate of pod old expired
`,
	}} {
		var b bytes.Buffer
		if err := printMeshStatus(&b, rows, tc.output, now); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("-o %q:\n%s\nwant:\n%s", tc.output, b.String(), tc.want)
		}
	}

	var b bytes.Buffer
	if err := printMeshStatus(&b, rows[:2], "json", now); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("-o json: %v\n%s", err, b.String())
	}
	if len(got) != 2 || got[0]["expiry"] != "2026-12-07T05:30:00Z" || got[0]["mtls"] != "STRICT" || got[0]["authzPolicies"] != 2.0 {
		t.Errorf("-o json, first row: %v", got[0])
	}
	if _, ok := got[1]["expiry"]; ok {
		t.Errorf("-o json: an unknown expiry is written: %v", got[1])
	}
	b.Reset()
	if err := printMeshStatus(&b, []mesh.WorkloadStatus{}, "json", now); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("-o json of no workloads: %q, %v; want []", b.String(), err)
	}
}

func meshPolicy(kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

func TestListMeshObjects(t *testing.T) {
	ctx := context.Background()
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "api-1"}},
	}
	policies := []runtime.Object{
		meshPolicy("AuthorizationPolicy", "shop", "a"),
		meshPolicy("AuthorizationPolicy", "other", "b"),
		meshPolicy("AuthorizationPolicy", authz.RootNamespace, "root"),
		meshPolicy("PeerAuthentication", authz.RootNamespace, "mesh"),
	}
	listKinds := map[schema.GroupVersionResource]string{
		v1alpha1.AuthorizationPolicies: "AuthorizationPolicyList",
		v1alpha1.PeerAuthentications:   "PeerAuthenticationList",
	}
	names := func(o meshObjects) (pods, nss, authzs, peers []string) {
		for _, p := range o.pods {
			pods = append(pods, p.Namespace+"/"+p.Name)
		}
		for _, n := range o.namespaces {
			nss = append(nss, n.Name)
		}
		for _, p := range o.authz {
			authzs = append(authzs, p.Namespace+"/"+p.Name)
		}
		for _, p := range o.peer {
			peers = append(peers, p.Namespace+"/"+p.Name)
		}
		for _, s := range [][]string{pods, nss, authzs, peers} {
			slices.Sort(s)
		}
		return
	}

	for _, tc := range []struct {
		name                            string
		namespace                       string
		noCRDs                          bool
		pods, namespaces, authzs, peers []string
	}{
		{name: "all namespaces", pods: []string{"other/api-1", "shop/web-1"}, namespaces: []string{"other", "shop"},
			authzs: []string{"kube-system/root", "other/b", "shop/a"}, peers: []string{"kube-system/mesh"}},
		{name: "one namespace, with the root namespace's policies", namespace: "shop", pods: []string{"shop/web-1"}, namespaces: []string{"shop"},
			authzs: []string{"kube-system/root", "shop/a"}, peers: []string{"kube-system/mesh"}},
		{name: "a namespace that does not exist", namespace: "gone", authzs: []string{"kube-system/root"}, peers: []string{"kube-system/mesh"}},
		{name: "without the mesh's CRDs, no policies", noCRDs: true, pods: []string{"other/api-1", "shop/web-1"}, namespaces: []string{"other", "shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, policies...)
			if tc.noCRDs {
				dyn.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), "")
				})
			}
			got, err := listMeshObjects(ctx, fake.NewClientset(objs...), dyn, tc.namespace)
			if err != nil {
				t.Fatal(err)
			}
			pods, nss, authzs, peers := names(got)
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"pods", pods, tc.pods}, {"namespaces", nss, tc.namespaces}, {"AuthorizationPolicies", authzs, tc.authzs}, {"PeerAuthentications", peers, tc.peers}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestMeshTrustDomain(t *testing.T) {
	ctx := context.Background()
	published := fake.NewClientset()
	c := clusterconfig.Default()
	c.ClusterDomain = "corp.example"
	if err := clusterconfig.Publish(ctx, published, c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client *fake.Clientset
		want   string
	}{
		{"published", published, "corp.example"},
		{"not published", fake.NewClientset(), "cluster.local"},
	} {
		got, err := meshTrustDomain(ctx, tc.client, io.Discard)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
