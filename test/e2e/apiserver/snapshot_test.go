package apiserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestEtcdSnapshotRestore: scheduled snapshots are taken and pruned; a
// snapshot saved with `skiff etcd-snapshot save` restores a wiped cluster
// to exactly the objects it held (same UIDs, same data); a truncated or
// corrupt snapshot is refused before anything changes.
func TestEtcdSnapshotRestore(t *testing.T) {
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{Args: []string{
		"--etcd-snapshot-schedule-cron", "@every 2s", "--etcd-snapshot-retention", "2",
	}})
	ctx := e2eutil.Context(t, 6*time.Minute)
	client := srv.Client()
	paths := server.PathsIn(srv.DataDir)

	for i := 0; i < 3; i++ {
		ns := fmt.Sprintf("snap-%d", i)
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 40; j++ {
			name := fmt.Sprintf("obj-%d", j)
			if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"v": name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	scheduled := func(ls string) int {
		n := 0
		for _, line := range strings.Split(ls, "\n") {
			if strings.HasPrefix(line, server.ScheduledSnapshotName+"-") {
				n++
			}
		}
		return n
	}
	t.Run("scheduled", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := skiff(t, "etcd-snapshot", "ls", "--data-dir", srv.DataDir)
			if scheduled(out) == 2 {
				// Two kept; give the schedule time to take more.
				time.Sleep(5 * time.Second)
				out = skiff(t, "etcd-snapshot", "ls", "--data-dir", srv.DataDir)
				if n := scheduled(out); n != 2 {
					t.Fatalf("retention 2 keeps %d scheduled snapshots:\n%s", n, out)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no two scheduled snapshots within 30 s:\n%s", out)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	out := skiff(t, "etcd-snapshot", "save", "--name", "before", "--data-dir", srv.DataDir)
	list, _ := filepath.Glob(filepath.Join(paths.Snapshots, "before-*"))
	var snap string
	for _, f := range list {
		if !strings.Contains(filepath.Base(f), ".") {
			snap = f
		}
	}
	if snap == "" || !strings.Contains(out, snap) {
		t.Fatalf("save printed %q; files %v", out, list)
	}
	want := objects(t, ctx, srv)
	t.Logf("snapshot %s holds %d objects", filepath.Base(snap), len(want))

	// Changes after the snapshot, which the restore must undo.
	if err := client.CoreV1().Namespaces().Delete(ctx, "snap-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("snap-1").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("snap-2").Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "obj-0"}, Data: map[string]string{"v": "changed"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A rotation after the snapshot: the restored Secrets need the old key.
	skiff(t, "secrets-encrypt", "rotate-keys", "--data-dir", srv.DataDir)
	if code, _ := srv.Stop(30 * time.Second); code != 0 {
		t.Fatalf("server exit code %d", code)
	}

	t.Run("refuses-bad-snapshots", func(t *testing.T) {
		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		truncated := filepath.Join(dir, "truncated")
		corrupt := filepath.Join(dir, "corrupt")
		os.WriteFile(truncated, data[:len(data)/2], 0o600)
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 0xff
		os.WriteFile(corrupt, bad, 0o600)
		for file, msg := range map[string]string{truncated: "truncated", corrupt: "corrupt"} {
			out, err := exec.Command(e2eutil.Binary(t), "server", "--data-dir", srv.DataDir, "--cluster-reset", "--cluster-reset-restore-path", file).CombinedOutput()
			if err == nil || !strings.Contains(string(out), msg) {
				t.Errorf("restore of a %s snapshot: %v\n%s", msg, err, out)
			}
		}
		if old, _ := filepath.Glob(paths.Etcd + "-old-*"); len(old) > 0 {
			t.Fatalf("a refused restore moved the data: %v", old)
		}
	})

	// Wipe, restore, start.
	if err := os.RemoveAll(paths.Etcd); err != nil {
		t.Fatal(err)
	}
	out = skiff(t, "server", "--data-dir", srv.DataDir, "--cluster-reset", "--cluster-reset-restore-path", snap)
	if !strings.Contains(out, "etcd restored from the snapshot") {
		t.Fatalf("cluster-reset:\n%s", out)
	}
	srv.Start()
	got := objects(t, ctx, srv)
	for key, uid := range want {
		if got[key] != uid {
			t.Errorf("after restore %s has UID %q, want %q", key, got[key], uid)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("after restore %s exists, which the snapshot did not hold", key)
		}
	}
	c := srv.Client()
	cm, err := c.CoreV1().ConfigMaps("snap-2").Get(ctx, "obj-0", metav1.GetOptions{})
	if err != nil || cm.Data["v"] != "obj-0" {
		t.Fatalf("snap-2/obj-0 after restore: %v %v", cm.Data, err)
	}
	s, err := c.CoreV1().Secrets("snap-0").Get(ctx, "obj-39", metav1.GetOptions{})
	if err != nil || string(s.Data["v"]) != "obj-39" {
		t.Fatalf("a restored Secret: %v %v", s, err)
	}
}

// objects maps every object the API serves (group/resource/namespace/name)
// to its UID, less those that change on their own: Events, Leases, and
// the API server's identity.
func objects(t *testing.T, ctx context.Context, srv *e2eutil.Server) map[string]string {
	t.Helper()
	cfg := srv.RESTConfig()
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := disc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !strings.Contains(strings.Join(r.Verbs, ","), "list") {
				continue
			}
			if r.Name == "events" || r.Name == "leases" {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatalf("list %s %s: %v", gv, r.Name, err)
			}
			for _, it := range items.Items {
				out[fmt.Sprintf("%s/%s/%s/%s", gv.Group, r.Name, it.GetNamespace(), it.GetName())] = string(it.GetUID())
			}
		}
	}
	return out
}
