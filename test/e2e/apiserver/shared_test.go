package apiserver

import (
	"testing"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestSharedServer runs the checks that can share one server: each kubectl
// version in turn over the manifest set, then bad input and anonymous access.
func TestSharedServer(t *testing.T) {
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	t.Run("version", func(t *testing.T) { testVersion(t, srv) })
	for _, k := range e2eutil.Kubectls(t) {
		t.Run("kubectl-"+k.Name, func(t *testing.T) { testKubectl(t, srv, k) })
	}
	t.Run("bad-input", func(t *testing.T) { testBadInput(t, srv) })
	t.Run("anonymous", func(t *testing.T) { testAnonymous(t, srv) })
	t.Run("service-account-auth", func(t *testing.T) { testServiceAccountAuth(t, srv, e2eutil.Kubectls(t)[0]) })
	t.Run("tokens", func(t *testing.T) { testTokens(t, srv) })
	t.Run("audit", func(t *testing.T) { testAudit(t, srv, e2eutil.Kubectls(t)[0]) })
	t.Run("kwok", func(t *testing.T) { testKwok(t, srv) })
}
