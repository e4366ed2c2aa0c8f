package storage

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestListAndPruneSnapshots(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"etcd-snapshot-n1-100", "etcd-snapshot-n1-100.sha256", "etcd-snapshot-n1-100.encryption-config.yaml",
		"etcd-snapshot-n1-300", "etcd-snapshot-n1-300.sha256",
		"etcd-snapshot-n1-200", "etcd-snapshot-n1-200.sha256",
		"on-demand-n1-150", "etcd-snapshot-n2-50", "etcd-snapshot-n1-400.part", ".hidden",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := ListSnapshots(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	want := []string{"etcd-snapshot-n1-300", "etcd-snapshot-n1-200", "on-demand-n1-150", "etcd-snapshot-n1-100", "etcd-snapshot-n2-50"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("list: %v, want %v (newest first, no sidecars or partial files)", names, want)
	}
	deleted, err := PruneSnapshots(dir, "etcd-snapshot", "n1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(deleted, []string{"etcd-snapshot-n1-100"}) {
		t.Fatalf("pruned %v, want the oldest of n1's scheduled ones only", deleted)
	}
	for _, f := range []string{"etcd-snapshot-n1-100", "etcd-snapshot-n1-100.sha256", "etcd-snapshot-n1-100.encryption-config.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after pruning", f)
		}
	}
	for _, bad := range []string{"../etc/passwd", ".hidden", "missing-n1-1"} {
		if err := DeleteSnapshot(dir, bad); err == nil {
			t.Errorf("delete %q succeeded", bad)
		}
	}
	if err := DeleteSnapshot(dir, "on-demand-n1-150"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusesNonSnapshots(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"short": 1000, "aligned-no-hash": 4096, "aligned-bad-hash": 4096 + 32} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := VerifySnapshot(p); err == nil {
			t.Errorf("%s verified", name)
		}
	}
}
