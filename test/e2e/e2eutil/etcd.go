package e2eutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EtcdBinary is Debian's etcd-server (`scripts/deps.sh test` installs it).
const EtcdBinary = "/usr/bin/etcd"

// EtcdMember is one etcd process of an EtcdCluster.
type EtcdMember struct {
	Name      string
	ClientURL string
	PeerURL   string
	proc      *process
}

// EtcdCluster is a throwaway etcd cluster on loopback ports, its data under
// t.TempDir(); its members are killed when the test ends.
type EtcdCluster struct {
	Members []*EtcdMember
}

// StartEtcdCluster starts an n-member cluster from EtcdBinary and waits until
// every member reports healthy. It skips the test if the binary is absent.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Skipf("%s is not installed (run scripts/deps.sh test, which installs Debian's etcd-server): %v", EtcdBinary, err)
	}
	c := &EtcdCluster{}
	var initial []string
	for i := 0; i < n; i++ {
		m := &EtcdMember{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://127.0.0.1:" + strconv.Itoa(FreePort(t)),
			PeerURL:   "http://127.0.0.1:" + strconv.Itoa(FreePort(t)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, m := range c.Members {
			if m.proc != nil {
				m.proc.kill()
				if t.Failed() {
					logTail(t, "etcd "+m.Name, m.proc.logPath, 20)
				}
			}
		}
	})
	for _, m := range c.Members {
		argv := []string{EtcdBinary,
			"--name", m.Name,
			"--data-dir", filepath.Join(dir, m.Name),
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "skiff-e2e",
			// Fast elections so a killed leader is replaced quickly.
			"--heartbeat-interval", "100",
			"--election-timeout", "1000",
			// The API server's own compaction is enough for a test.
			"--auto-compaction-retention", "0",
		}
		p, err := startProcess(filepath.Join(dir, m.Name+".log"), argv)
		if err != nil {
			t.Fatal(err)
		}
		m.proc = p
	}
	deadline := time.Now().Add(time.Minute)
	for _, m := range c.Members {
		for {
			err := m.health()
			if err == nil {
				break
			}
			if !m.proc.running() || time.Now().After(deadline) {
				logTail(t, "etcd "+m.Name, m.proc.logPath, 30)
				t.Fatalf("etcd %s not healthy: %v", m.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Leader returns the member that is currently leader.
func (c *EtcdCluster) Leader() (*EtcdMember, error) {
	for _, m := range c.Members {
		if !m.proc.running() {
			continue
		}
		st, err := m.status()
		if err != nil {
			continue
		}
		for _, other := range c.Members {
			if ost, err := other.status(); err == nil && ost.Header.MemberID == st.Leader {
				return other, nil
			}
		}
	}
	return nil, fmt.Errorf("no member reports a leader")
}

// Kill SIGKILLs the member.
func (m *EtcdMember) Kill() { m.proc.kill() }

var etcdHTTP = &http.Client{Timeout: 2 * time.Second}

func (m *EtcdMember) health() error {
	resp, err := etcdHTTP.Get(m.ClientURL + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
		return fmt.Errorf("health: %s", body)
	}
	return nil
}

type etcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

// status asks the member's gRPC gateway for its maintenance status.
func (m *EtcdMember) status() (etcdStatus, error) {
	var st etcdStatus
	resp, err := etcdHTTP.Post(m.ClientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, err
	}
	if st.Leader == "" {
		return st, fmt.Errorf("member %s has no leader", m.Name)
	}
	return st, nil
}
