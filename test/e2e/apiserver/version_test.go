package apiserver

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// upstreamVersion is the Kubernetes release skiff embeds, with build
// metadata naming skiff (as k3s reports v1.37.2+k3s1).
var upstreamVersion = regexp.MustCompile(`^v1\.37\.\d+(\+[0-9A-Za-z.-]+)?$`)

// testVersion checks the server reports the Kubernetes version it is, in the
// semver form clients parse (kubectl's skew warning, Helm's kubeVersion).
func testVersion(t *testing.T, srv *e2eutil.Server) {
	for _, k := range e2eutil.Kubectls(t) {
		t.Run("kubectl-"+k.Name, func(t *testing.T) {
			c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
			r := c.run("version", "-o", "json")
			var v struct {
				Server struct {
					Major, Minor, GitVersion string
				} `json:"serverVersion"`
			}
			if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
				t.Fatalf("kubectl version -o json: %v\nstdout:\n%s\nstderr:\n%s", err, r.Stdout, r.Stderr)
			}
			if r.Code != 0 || v.Server.Major != "1" || v.Server.Minor != "37" || !upstreamVersion.MatchString(v.Server.GitVersion) {
				t.Errorf("kubectl version: exit %d, server %s.%s %q, want exit 0 and 1.37 v1.37.x\nstderr:\n%s",
					r.Code, v.Server.Major, v.Server.Minor, v.Server.GitVersion, r.Stderr)
			}
		})
	}
}
