package storage

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestEmbeddedKeepsDataAcrossRestarts writes through a real client, stops
// the embedded etcd and starts it again on the same directory.
func TestEmbeddedKeepsDataAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	put := func(s *Store, key, val string) {
		t.Helper()
		c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	get := func(s *Store, key string) string {
		t.Helper()
		c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	s, err := Start(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	put(s, "/registry/test", "kept")
	s.Close()

	s, err = Start(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := get(s, "/registry/test"); got != "kept" {
		t.Errorf("after restart: %q, want %q", got, "kept")
	}
}

func TestExternalEndpointsStartNothing(t *testing.T) {
	s, err := Start(context.Background(), Config{Endpoints: []string{"http://10.0.0.1:2379"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.etcd != nil || len(s.Endpoints) != 1 {
		t.Errorf("external datastore: embedded=%v endpoints=%v", s.etcd != nil, s.Endpoints)
	}
	s.Close() // a no-op
}

// TestQuietStop: the listeners' "closed" errors are dropped once Close has
// begun, not before, and other errors always pass.
func TestQuietStop(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	closing := new(atomic.Bool)
	lg := zap.New(quietStop{Core: core, closing: closing}).With(zap.String("member", "skiff"))
	lg.Error(stopNoise, zap.Error(errors.New("accept tcp: use of closed network connection")))
	closing.Store(true)
	lg.Error(stopNoise, zap.Error(errors.New("http: Server closed")))
	lg.Error("failed to save snapshot")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	if want := []string{stopNoise, "failed to save snapshot"}; !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}
