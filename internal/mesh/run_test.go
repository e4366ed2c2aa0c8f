package mesh

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/knftables"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// TestRunCapturesAndStops runs a proxy against fake clients: it captures
// the node's enrolled pod, serves its metrics, and when its context ends it
// returns promptly with no goroutine left behind.
func TestRunCapturesAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	web := pod("shop", "web-1", "10.42.0.7", nil)
	client := fake.NewClientset(ns("shop", map[string]string{EnabledLabel: "true"}), web,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "elsewhere"}, Spec: corev1.PodSpec{NodeName: "b"},
			Status: corev1.PodStatus{PodIP: "10.42.1.7", Phase: corev1.PodRunning}})
	// The mesh API is not served at first (discovery fails): the proxy
	// waits for it.
	client.Resources = []*metav1.APIResourceList{{GroupVersion: v1alpha1.GroupVersion.String(), APIResources: []metav1.APIResource{
		{Name: v1alpha1.AuthorizationPolicies.Resource}, {Name: v1alpha1.PeerAuthentications.Resource},
	}}}
	var served atomic.Bool
	client.PrependReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) {
		if !served.Load() {
			return true, nil, errors.New("the server could not find the requested resource")
		}
		return false, nil, nil
	})
	time.AfterFunc(700*time.Millisecond, func() { served.Store(true) })
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		v1alpha1.AuthorizationPolicies: "AuthorizationPolicyList",
		v1alpha1.PeerAuthentications:   "PeerAuthenticationList",
	})
	nft := knftables.NewFake(knftables.IPv4Family, Table)
	p, err := New(Config{NodeName: "a", Client: client, Dynamic: dyn, NFT: nft, ListenHost: "127.0.0.1", Ports: &Ports{},
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(nft.Dump(), "10.42.0.7") {
		if time.Now().After(deadline) {
			t.Fatalf("the enrolled pod never captured:\n%s", nft.Dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dump := nft.Dump(); strings.Contains(dump, "10.42.1.7") {
		t.Errorf("another node's pod captured here:\n%s", dump)
	}
	if got := testutil.ToFloat64(p.metrics.enrolled); got != 1 {
		t.Errorf("skiff_mesh_enrolled_pods = %v, want 1", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context ending")
	}
}
