package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The ports a member serves remote clients and its peers on, at its address
// (etcd's registered ports, as k3s uses them).
const (
	ClientPort = 2379
	PeerPort   = 2380
)

// Member is the embedded etcd as one member of a cluster of servers. It
// serves its peers and remote clients (the servers that join) with TLS on
// Address, each side authenticated by a certificate of the cluster's etcd CA;
// its own server's API server uses the loopback client URL.
type Member struct {
	// Name is the member's name, unique in the cluster.
	Name string
	// Address is the IP the other servers reach this one at.
	Address string
	// TLS are the etcd CA, and this member's certificate (serving and client
	// usage, naming Address) and key.
	TLS TLSFiles
	// Join, when set and the data dir holds no member yet, are the client
	// URLs of the cluster's members: the new member is added through them
	// (as a learner, promoted once it has caught up). Empty starts a new
	// cluster of one, or restarts the member the data dir holds.
	Join []string
}

// TLSFiles are a CA and a key pair, as PEM files.
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) info() transport.TLSInfo {
	return transport.TLSInfo{TrustedCAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key, ClientCertAuth: true}
}

// ClientURL is the URL a member serves remote clients at.
func ClientURL(address string) string {
	return "https://" + net.JoinHostPort(address, strconv.Itoa(ClientPort))
}

func peerURL(address string) string {
	return "https://" + net.JoinHostPort(address, strconv.Itoa(PeerPort))
}

// configure sets ec up for this member; the function it returns, if any,
// runs once the member serves (a joining member's promotion from learner).
func (m *Member) configure(ctx context.Context, ec *embed.Config) (afterStart, error) {
	if net.ParseIP(m.Address) == nil {
		return nil, fmt.Errorf("etcd member address %q is not an IP address", m.Address)
	}
	remote, _ := url.Parse(ClientURL(m.Address))
	peer, _ := url.Parse(peerURL(m.Address))
	ec.Name = m.Name
	ec.ListenClientUrls = append(ec.ListenClientUrls, *remote)
	ec.AdvertiseClientUrls = []url.URL{*remote}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.ClientTLSInfo = m.TLS.info()
	ec.PeerTLSInfo = m.TLS.info()
	ec.InitialCluster = m.Name + "=" + peer.String()
	if hasMember(ec.Dir) {
		// A restart: the data dir knows the cluster. Its own peer URL is
		// brought up to date once it serves (a lone server made a member
		// of a cluster, or a new address).
		return m.updatePeerURL, nil
	}
	if len(m.Join) == 0 {
		return nil, nil
	}
	client, err := m.client(m.Join)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	id, initial, err := m.add(ctx, client, peer.String())
	if err != nil {
		return nil, err
	}
	ec.InitialCluster = initial
	ec.ClusterState = embed.ClusterStateFlagExisting
	return func(ctx context.Context, e *embed.Etcd, _ string) error {
		if err := m.promote(ctx, id); err != nil {
			return err
		}
		// The promotion is the leader's; this member serves as a voter
		// once it has applied it.
		for deadline := time.Now().Add(time.Minute); e.Server.IsLearner(); {
			if time.Now().After(deadline) {
				return errors.New("this server's etcd member was promoted but still acts as a learner after a minute")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		return nil
	}, nil
}

// afterStart is what a member does once it serves, given its local client URL.
type afterStart func(ctx context.Context, e *embed.Etcd, localURL string) error

// hasMember reports whether the etcd data dir holds a member already.
func hasMember(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

// client is an etcd client of endpoints with this member's certificate.
func (m *Member) client(endpoints []string) (*clientv3.Client, error) {
	tlsConfig, err := m.TLS.info().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	return newClient(endpoints, tlsConfig)
}

func newClient(endpoints []string, tlsConfig *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// add adds this member to the cluster as a learner and returns its ID and
// the cluster's members as an initial-cluster list. A learner added by an
// earlier attempt that never started (no name yet) is taken over.
func (m *Member) add(ctx context.Context, client *clientv3.Client, peer string) (uint64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	list, err := client.MemberList(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("list the etcd members at %s: %w", strings.Join(m.Join, ","), err)
	}
	var id uint64
	for _, mem := range list.Members {
		if !slices.Contains(mem.PeerURLs, peer) {
			continue
		}
		if mem.Name != "" && mem.Name != m.Name {
			return 0, "", fmt.Errorf("etcd member %s already has this server's peer URL %s: remove it first (skiff etcd member remove %s, on another server)", mem.Name, peer, mem.Name)
		}
		if mem.Name == m.Name {
			return 0, "", fmt.Errorf("etcd member %s is in the cluster, but this server's etcd data is gone: remove it first (skiff etcd member remove %s, on another server), then start this server again", mem.Name, mem.Name)
		}
		id = mem.ID
	}
	members := list.Members
	for id == 0 {
		// etcd refuses ("unhealthy cluster") until its leader has been
		// connected to its peers for a few seconds, as just after another
		// member joined, and while another learner catches up.
		added, err := client.MemberAddAsLearner(ctx, []string{peer})
		if err != nil && (errors.Is(err, rpctypes.ErrUnhealthy) || errors.Is(err, rpctypes.ErrTooManyLearners)) && ctx.Err() == nil {
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("add this server to the etcd cluster: %w", err)
		}
		id, members = added.Member.ID, added.Members
	}
	var initial []string
	for _, mem := range members {
		name := mem.Name
		if mem.ID == id {
			name = m.Name
		}
		if name == "" {
			continue // another member added but not started: not ours to name
		}
		for _, u := range mem.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	return id, strings.Join(initial, ","), nil
}

// promote makes the learner id a voting member once it has caught up with
// the leader (etcd refuses until then).
func (m *Member) promote(ctx context.Context, id uint64) error {
	client, err := m.client(m.Join)
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := client.MemberPromote(pctx, id)
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promote this server's etcd member from learner: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// updatePeerURL sets this member's peer URL in the cluster to the one it
// serves, if it differs.
func (m *Member) updatePeerURL(ctx context.Context, e *embed.Etcd, localURL string) error {
	want := peerURL(m.Address)
	id := uint64(e.Server.MemberID())
	self := e.Server.Cluster().Member(e.Server.MemberID())
	if self == nil || slices.Equal(self.PeerURLs, []string{want}) {
		return nil
	}
	client, err := newClient([]string{localURL}, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := client.MemberUpdate(ctx, id, []string{want}); err != nil {
		return fmt.Errorf("set this etcd member's peer URL to %s: %w", want, err)
	}
	return nil
}

// MemberInfo is one member as `skiff etcd member list` shows it.
type MemberInfo struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// ListMembers lists the members of the etcd cluster that the embedded etcd
// at url (its loopback client URL) belongs to.
func ListMembers(ctx context.Context, url string) ([]MemberInfo, error) {
	client, err := newClient([]string{url}, nil)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	var out []MemberInfo
	for _, m := range resp.Members {
		out = append(out, MemberInfo{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveMember removes the member named name (or with this hexadecimal ID)
// from the cluster of the embedded etcd at url, and returns its ID.
func RemoveMember(ctx context.Context, url, name string) (uint64, error) {
	members, err := ListMembers(ctx, url)
	if err != nil {
		return 0, err
	}
	var id uint64
	for _, m := range members {
		if m.Name == name || strconv.FormatUint(m.ID, 16) == strings.ToLower(name) {
			id = m.ID
		}
	}
	if id == 0 {
		var names []string
		for _, m := range members {
			names = append(names, m.Name)
		}
		return 0, fmt.Errorf("no etcd member named %s (members: %s)", name, strings.Join(names, ", "))
	}
	client, err := newClient([]string{url}, nil)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := client.MemberRemove(ctx, id); err != nil {
		return 0, fmt.Errorf("remove etcd member %s: %w", name, err)
	}
	return id, nil
}
