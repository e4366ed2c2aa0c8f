package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/secretsencrypt"
	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

const encryptedSecrets = 300

// TestSecretsEncryption checks that Secrets are ciphertext in etcd on a new
// cluster, that `skiff secrets-encrypt rotate-keys` re-encrypts every one
// with a new key, that a rotation cut short by kill -9 of the server leaves
// every Secret readable and finishes when run again, and that turning
// encryption off keeps old Secrets readable.
func TestSecretsEncryption(t *testing.T) {
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	ctx := e2eutil.Context(t, 8*time.Minute)
	client := srv.Client()
	path := server.PathsIn(srv.DataDir).EncryptionConfig
	for i := 0; i < encryptedSecrets; i++ {
		_, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("enc-%d", i)},
			StringData: map[string]string{"password": fmt.Sprintf("plain-text-%d", i)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	first := primaryKey(t, path)
	checkStored(t, ctx, srv, first)

	out := skiff(t, "secrets-encrypt", "status", "--data-dir", srv.DataDir)
	for _, want := range []string{"Encryption Status: Enabled", "Current Rotation Stage: start", "All hashes match", first} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	t.Run("rotate", func(t *testing.T) {
		out := skiff(t, "secrets-encrypt", "rotate-keys", "--data-dir", srv.DataDir)
		if !strings.Contains(out, "rotation done") {
			t.Fatalf("rotate-keys:\n%s", out)
		}
		second := primaryKey(t, path)
		if second == first {
			t.Fatalf("the primary key is still %s", first)
		}
		if s, _, _ := secretsencrypt.Load(path); len(s.Keys) != 1 {
			t.Fatalf("after rotation the file keeps %d keys", len(s.Keys))
		}
		checkStored(t, ctx, srv, second)
		first = second
	})

	t.Run("interrupted-by-kill-9", func(t *testing.T) {
		cmd := exec.Command(e2eutil.Binary(t), "secrets-encrypt", "rotate-keys", "--data-dir", srv.DataDir)
		var rotateOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &rotateOut, &rotateOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the server once the new key is the primary and in use
		// (after the "prepare" stage, which adds it after the old one):
		// some Secrets rewritten with it, most likely not all.
		etcd := etcdClient(t, srv)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s, _, err := secretsencrypt.Load(path)
			if err == nil && s.Stage() == secretsencrypt.StageReencrypt && countWithKey(t, ctx, etcd, s.Keys[0].Name) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the rotation never began rewriting:\n%s", rotateOut.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		s, _, err := secretsencrypt.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		rewritten := countWithKey(t, ctx, etcd, s.Keys[0].Name)
		srv.Kill()
		cmd.Wait()
		t.Logf("killed with keys %v, %d of %d Secrets rewritten at most; rotate-keys said:\n%s", keyNames(s), rewritten, encryptedSecrets, rotateOut.String())
		srv.Start()
		client := srv.Client()
		for i := 0; i < encryptedSecrets; i++ {
			sec, err := client.CoreV1().Secrets("default").Get(ctx, fmt.Sprintf("enc-%d", i), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("after kill -9 mid-rotation: %v", err)
			}
			if got, want := string(sec.Data["password"]), fmt.Sprintf("plain-text-%d", i); got != want {
				t.Fatalf("Secret enc-%d reads %q, want %q", i, got, want)
			}
		}
		out := skiff(t, "secrets-encrypt", "rotate-keys", "--data-dir", srv.DataDir)
		if !strings.Contains(out, "rotation done") {
			t.Fatalf("rotate-keys again:\n%s", out)
		}
		final := primaryKey(t, path)
		if len(s.Keys) == 2 && final != s.Keys[0].Name {
			t.Fatalf("the resumed rotation made another key %s instead of finishing with %s", final, s.Keys[0].Name)
		}
		checkStored(t, ctx, srv, final)
	})

	t.Run("disabled", func(t *testing.T) {
		srv.Stop(30 * time.Second)
		srv.Args([]string{"--secrets-encryption=false"})
		srv.Start()
		client := srv.Client()
		if _, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "plain"},
			StringData: map[string]string{"password": "visible"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		resp, err := etcdClient(t, srv).Get(ctx, "/registry/secrets/default/plain")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("etcd get: %v %v", resp, err)
		}
		if v := resp.Kvs[0].Value; bytes.HasPrefix(v, []byte("k8s:enc:")) || !bytes.Contains(v, []byte("visible")) {
			t.Fatalf("with encryption off a new Secret is stored as %q", v[:min(len(v), 60)])
		}
		if sec, err := client.CoreV1().Secrets("default").Get(ctx, "enc-0", metav1.GetOptions{}); err != nil || string(sec.Data["password"]) != "plain-text-0" {
			t.Fatalf("an encrypted Secret after disabling: %v %v", sec, err)
		}
		out := skiff(t, "secrets-encrypt", "status", "--data-dir", srv.DataDir)
		if !strings.Contains(out, "Encryption Status: Disabled") {
			t.Fatalf("status:\n%s", out)
		}
	})
}

func skiff(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(e2eutil.Binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func primaryKey(t *testing.T, path string) string {
	t.Helper()
	s, _, err := secretsencrypt.Load(path)
	if err != nil || len(s.Keys) == 0 {
		t.Fatalf("load %s: %+v %v", path, s, err)
	}
	return s.Keys[0].Name
}

func keyNames(s secretsencrypt.State) []string {
	var names []string
	for _, k := range s.Keys {
		names = append(names, k.Name)
	}
	return names
}

func etcdClient(t *testing.T, srv *e2eutil.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.EtcdURL()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countWithKey counts the test's Secrets stored under the named key.
func countWithKey(t *testing.T, ctx context.Context, c *clientv3.Client, key string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/registry/secrets/default/enc-", clientv3.WithPrefix())
	if err != nil {
		return 0
	}
	n := 0
	for _, kv := range resp.Kvs {
		if bytes.HasPrefix(kv.Value, []byte("k8s:enc:secretbox:v1:"+key+":")) {
			n++
		}
	}
	return n
}

// checkStored reads every test Secret straight from etcd: each must be
// secretbox ciphertext under key, without its plain text.
func checkStored(t *testing.T, ctx context.Context, srv *e2eutil.Server, key string) {
	t.Helper()
	resp, err := etcdClient(t, srv).Get(ctx, "/registry/secrets/default/enc-", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != encryptedSecrets {
		t.Fatalf("etcd holds %d test Secrets, want %d", len(resp.Kvs), encryptedSecrets)
	}
	prefix := []byte("k8s:enc:secretbox:v1:" + key + ":")
	for _, kv := range resp.Kvs {
		if !bytes.HasPrefix(kv.Value, prefix) {
			t.Fatalf("%s is stored as %q…, want the prefix %s", kv.Key, kv.Value[:min(len(kv.Value), 40)], prefix)
		}
		if bytes.Contains(kv.Value, []byte("plain-text-")) {
			t.Fatalf("%s holds its plain text", kv.Key)
		}
	}
}
