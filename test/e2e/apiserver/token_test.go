package apiserver

import (
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/internal/jointoken"
	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// testTokens: `skiff token create` prints a token in DATA/token's form
// that authenticates as a bootstrap token; `list` shows it with its TTL;
// after `delete` the API server refuses it.
func testTokens(t *testing.T, srv *e2eutil.Server) {
	out := strings.TrimSpace(skiff(t, "token", "create", "--ttl", "1h", "--description", "e2e", "--data-dir", srv.DataDir))
	tok, err := jointoken.Parse(out)
	if err != nil || tok.CAHash == "" {
		t.Fatalf("token create printed %q: %v (want K10<CA hash>::id.secret)", out, err)
	}
	ctx := e2eutil.Context(t, time.Minute)
	whoami := func() (string, error) {
		c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, BearerToken: tok.Bootstrap(),
			TLSClientConfig: rest.TLSClientConfig{CAFile: server.PathsIn(srv.DataDir).CACert}})
		if err != nil {
			return "", err
		}
		r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return r.Status.UserInfo.Username, nil
	}
	if user, err := whoami(); err != nil || user != "system:bootstrap:"+tok.ID {
		t.Fatalf("the new token authenticates as %q (%v), want system:bootstrap:%s", user, err, tok.ID)
	}
	list := skiff(t, "token", "list", "--data-dir", srv.DataDir)
	var line string
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, tok.ID+" ") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "59m") || !strings.Contains(line, "e2e") || !strings.Contains(line, "authentication,signing") {
		t.Fatalf("token list:\n%s", list)
	}
	if list := skiff(t, "token", "list", "--data-dir", srv.DataDir); !strings.Contains(list, "<forever>") {
		t.Errorf("the server's own token (no expiry) is not listed:\n%s", list)
	}
	skiff(t, "token", "delete", out, "--data-dir", srv.DataDir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := whoami()
		if apierrors.IsUnauthorized(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a deleted token still authenticates: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
