package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// TestHelm drives the Helm SDK (helm.sh/helm/v4, what the helm CLI runs)
// against the cluster with a chart of this repository that has a
// dependency and hooks: install (the pre-install Job runs first, Helm
// waits for the Deployment's pods), upgrade (new values, the post-upgrade
// hook), rollback to the first revision, uninstall (the pre-delete hook).
func TestHelm(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	chart, err := loader.Load("testdata/charts/shop")
	if err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &the.kubeconfig, &ns
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	get := func(name string) map[string]string {
		t.Helper()
		cm, err := the.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ConfigMap %s: %v", name, err)
		}
		return cm.Data
	}
	check := func(what string, r any, revision int, greeting string, replicas int32) {
		t.Helper()
		rel, ok := r.(*releasev1.Release)
		if !ok {
			t.Fatalf("%s returned a %T", what, r)
		}
		if rel.Version != revision || rel.Info.Status != "deployed" {
			t.Fatalf("%s: revision %d %s, want %d deployed", what, rel.Version, rel.Info.Status, revision)
		}
		if g := get("shop-config")["greeting"]; g != greeting {
			t.Errorf("%s: greeting %q, want %q", what, g, greeting)
		}
		d, err := the.client.AppsV1().Deployments(ns).Get(ctx, "shop-web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.ReadyReplicas != replicas {
			t.Errorf("%s: %d ready replicas after Helm's wait, want %d", what, d.Status.ReadyReplicas, replicas)
		}
	}

	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = "shop", ns
	install.WaitStrategy, install.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
	rel, err := install.RunWithContext(ctx, chart, map[string]any{"greeting": "hello"})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	check("install", rel, 1, "hello", 1)
	job, err := the.client.BatchV1().Jobs(ns).Get(ctx, "shop-migrate", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 {
		t.Fatalf("the pre-install hook Job: %v %+v", err, job.Status)
	}
	if size := get("shop-cache")["size"]; size != "64" {
		t.Errorf("the dependency's ConfigMap: size %q, want the parent's value 64", size)
	}

	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = ns
	upgrade.WaitStrategy, upgrade.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
	rel, err = upgrade.RunWithContext(ctx, "shop", chart, map[string]any{"greeting": "bonjour", "replicas": 2})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	check("upgrade", rel, 2, "bonjour", 2)
	if rev := get("shop-upgraded")["revision"]; rev != "2" {
		t.Errorf("the post-upgrade hook recorded revision %q, want 2", rev)
	}

	rollback := action.NewRollback(cfg)
	rollback.Version = 1
	rollback.WaitStrategy, rollback.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
	if err := rollback.Run("shop"); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	status, err := action.NewStatus(cfg).Run("shop")
	if err != nil {
		t.Fatal(err)
	}
	check("rollback", status, 3, "hello", 1)

	uninstall := action.NewUninstall(cfg)
	uninstall.WaitStrategy, uninstall.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
	if _, err := uninstall.Run("shop"); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	for _, name := range []string{"shop-config", "shop-cache"} {
		if _, err := the.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s after uninstall: %v", name, err)
		}
	}
	if _, err := the.client.AppsV1().Deployments(ns).Get(ctx, "shop-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after uninstall: %v", err)
	}
	if g := get("shop-farewell")["greeting"]; g != "hello" {
		t.Errorf("the pre-delete hook's ConfigMap: greeting %q", g)
	}
	if _, err := action.NewStatus(cfg).Run("shop"); err == nil {
		t.Error("the release is still there after uninstall")
	}
}
