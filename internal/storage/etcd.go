// Package storage owns skiff's datastore: an embedded single-member etcd in
// the data directory, or the endpoints of an external etcd cluster. Only the
// API server talks to it (through k8s.io/apiserver's etcd3 storage and watch
// cache); every other component goes through the API.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config describes the datastore.
type Config struct {
	// DataDir holds the embedded etcd's files (ignored with Endpoints).
	DataDir string
	// Endpoints, when set, name an external etcd cluster and no etcd is embedded.
	Endpoints []string
	// URLFile, when set, receives the embedded etcd's client URL while it
	// runs, for the tools that work on the datastore beside the server
	// (`skiff etcd-snapshot`).
	URLFile string
	// Member, when set, makes the embedded etcd one member of a cluster of
	// servers (HA); nil runs a lone member on loopback.
	Member *Member
	// ForceNewCluster makes the member the data dir holds the only member
	// of its cluster, keeping the data (a membership reset).
	ForceNewCluster bool
	Log             *slog.Logger
}

// memberName is the lone embedded etcd's member name.
const memberName = "skiff"

// Store is a running datastore.
type Store struct {
	// Endpoints is what the API server connects to.
	Endpoints []string
	etcd      *embed.Etcd
	// closing is set when Close begins (the etcd logger reads it).
	closing *atomic.Bool
	urlFile string
}

// Start starts the embedded etcd (or only records the external endpoints)
// and returns once it serves clients.
func Start(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) > 0 {
		return &Store{Endpoints: cfg.Endpoints}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	// The ports are picked free just before etcd binds them; another process
	// may take one in between, so a bind failure is retried with new ports.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := startEmbedded(ctx, cfg)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func startEmbedded(ctx context.Context, cfg Config) (*Store, error) {
	// The local client URL: plain HTTP on loopback, for this server's API
	// server and the tools beside it (a member of a cluster serves remote
	// clients besides, with TLS).
	clientURL, err := freeURL()
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	var after afterStart
	if m := cfg.Member; m != nil {
		if after, err = m.configure(ctx, ec); err != nil {
			return nil, err
		}
	} else {
		peerURL, err := freeURL()
		if err != nil {
			return nil, err
		}
		ec.Name = memberName
		ec.ListenPeerUrls = []url.URL{*peerURL}
		ec.AdvertisePeerUrls = []url.URL{*peerURL}
		ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
		// A lone member (its peer URL a loopback port: it never gains
		// peers) waits out an election timeout before it leads and serves:
		// with etcd's 100 ms heartbeat and 1 s timeout, up to 1 s on a
		// fresh start and 1–2 s on a restart. 20 ms and 100 ms (etcd's
		// minimum ratio) make that 20–180 ms; there is no peer to miss a
		// heartbeat, and writes are committed and synced as before.
		ec.TickMs = 20
		ec.ElectionMs = 100
	}
	ec.ForceNewCluster = cfg.ForceNewCluster
	ec.LogLevel = zapcore.ErrorLevel.String()
	closing := new(atomic.Bool)
	zc := logutil.DefaultZapLoggerConfig
	zc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietStop{Core: c, closing: closing} }))
	if err != nil {
		return nil, fmt.Errorf("embedded etcd logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// The API server compacts through its own client (every 5 minutes, as
	// upstream); etcd's own auto-compaction keeps a bounded history besides.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = 8 << 30
	ec.MaxRequestBytes = 10 << 20

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, cfg.stoppedEarly(err)
	case <-e.Server.StopNotify():
		e.Close()
		return nil, cfg.stoppedEarly(errors.New("stopped before it was ready"))
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready within 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if after != nil {
		if err := after(ctx, e, clientURL.String()); err != nil {
			e.Close()
			return nil, err
		}
	}
	if cfg.URLFile != "" {
		if err := os.WriteFile(cfg.URLFile, []byte(clientURL.String()+"\n"), 0o600); err != nil {
			e.Close()
			return nil, err
		}
	}
	if cfg.Log != nil {
		cfg.Log.Info("embedded etcd ready", "dir", cfg.DataDir, "client", clientURL.String())
	}
	return &Store{Endpoints: []string{clientURL.String()}, etcd: e, closing: closing, urlFile: cfg.URLFile}, nil
}

// stoppedEarly is the error of an embedded etcd that stopped before it was
// ready; a member's says how to join again if it was removed.
func (c Config) stoppedEarly(err error) error {
	if c.Member != nil {
		return fmt.Errorf("embedded etcd: %w (if this server was removed from the etcd cluster with skiff etcd member remove, delete %s and start it with --server and --token-file to join again)", err, c.DataDir)
	}
	return fmt.Errorf("embedded etcd: %w", err)
}

// quietStop is the embedded etcd's log core, less the errors every clean
// stop prints once Close has begun: each of its listeners reporting that
// it was closed ("setting up serving from embedded etcd failed.").
type quietStop struct {
	zapcore.Core
	closing *atomic.Bool
}

// stopNoise is the message of those errors.
const stopNoise = "setting up serving from embedded etcd failed."

// joinNoise are errors a member logs while it joins a cluster, each
// retried until it passes: its promotion refused until it has caught up,
// and its storage version unknown until it has the leader's term.
var joinNoise = []string{"rejecting promote learner: learner is not ready", "failed to update storage version"}

func (q quietStop) With(fields []zapcore.Field) zapcore.Core {
	return quietStop{Core: q.Core.With(fields), closing: q.closing}
}

func (q quietStop) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == stopNoise && q.closing.Load() || slices.Contains(joinNoise, e.Message) {
		return ce
	}
	return q.Core.Check(e, ce)
}

// Close stops the embedded etcd, waiting at most five seconds; closing
// again does nothing.
func (s *Store) Close() {
	if s.etcd == nil || s.closing.Swap(true) {
		return
	}
	if s.urlFile != "" {
		os.Remove(s.urlFile)
	}
	done := make(chan struct{})
	go func() { s.etcd.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// EmbeddedEndpoint is the client URL a running server's embedded etcd
// wrote to urlFile.
func EmbeddedEndpoint(urlFile string) (string, error) {
	data, err := os.ReadFile(urlFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", errors.New("no embedded etcd runs for this data dir: start skiff server on it (a server with --datastore-endpoint has none: snapshot the external etcd with its own tools)")
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return &url.URL{Scheme: "http", Host: addr}, nil
}

// Ping reports whether an etcd answers at url within two seconds.
func Ping(url string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Status(ctx, url)
	return err
}
