package storage

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiffdev/skiff/internal/pki"
)

// TestMembersFormAClusterAndSurviveLosingOne starts three members on three
// loopback addresses with certificates of one CA: the second and third join
// through the first (as learners, promoted), a write through one is read
// through another, the cluster keeps serving writes with one member
// stopped, and the stopped member is removed.
func TestMembersFormAClusterAndSurviveLosingOne(t *testing.T) {
	ctx := context.Background()
	caDir := t.TempDir()
	ca, err := pki.EnsureCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	for _, a := range addrs {
		if l, err := net.Listen("tcp", net.JoinHostPort(a, "2380")); err != nil {
			t.Skipf("the etcd ports on %s are taken: %v", a, err)
		} else {
			l.Close()
		}
	}
	start := func(i int, join []string) *Store {
		t.Helper()
		dir := t.TempDir()
		cert, key, err := ca.Ensure(dir, "peer", pki.Leaf{CommonName: "m", IPs: []net.IP{net.ParseIP(addrs[i]), net.ParseIP("127.0.0.1")}, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(ctx, Config{DataDir: filepath.Join(dir, "etcd"), Member: &Member{
			Name: "m" + addrs[i], Address: addrs[i], Join: join,
			TLS: TLSFiles{CA: filepath.Join(caDir, pki.CACert), Cert: cert, Key: key},
		}})
		if err != nil {
			t.Fatalf("start member %d: %v", i, err)
		}
		return s
	}
	stores := []*Store{start(0, nil)}
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for i := 1; i < 3; i++ {
		stores = append(stores, start(i, []string{ClientURL(addrs[0])}))
	}
	members, err := ListMembers(ctx, stores[2].Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("members: %+v, want 3", members)
	}
	for _, m := range members {
		if m.Learner || m.Name == "" {
			t.Errorf("member %+v: want a started voting member", m)
		}
	}
	put := func(s *Store, key string) error {
		c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = c.Put(ctx, key, "v")
		return err
	}
	if err := put(stores[0], "/a"); err != nil {
		t.Fatal(err)
	}
	stores[0].Close()
	if err := put(stores[1], "/b"); err != nil {
		t.Fatalf("write with one member of three stopped: %v", err)
	}
	if _, err := RemoveMember(ctx, stores[1].Endpoints[0], "m"+addrs[0]); err != nil {
		t.Fatal(err)
	}
	if members, err = ListMembers(ctx, stores[2].Endpoints[0]); err != nil || len(members) != 2 {
		t.Fatalf("members after remove: %+v, %v", members, err)
	}
	if _, err := RemoveMember(ctx, stores[1].Endpoints[0], "nosuch"); err == nil {
		t.Error("removing an unknown member: no error")
	}
}
