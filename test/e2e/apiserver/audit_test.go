package apiserver

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the test reads.
type auditEvent struct {
	Level string `json:"level"`
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestObject json.RawMessage `json:"requestObject"`
}

// testAudit checks that the default audit policy records a create, an
// update and a denial through kubectl, as JSON lines in the data dir.
func testAudit(t *testing.T, srv *e2eutil.Server, k e2eutil.Kubectl) {
	ns := "audit-test"
	for _, args := range [][]string{
		{"create", "namespace", ns},
		{"-n", ns, "create", "deployment", "audited", "--image=registry.k8s.io/pause:3.10.2"},
		{"-n", ns, "label", "deployment", "audited", "tier=web"},
	} {
		if r := k.Run(t, srv.Kubeconfig, "", args...); r.Code != 0 {
			t.Fatalf("kubectl %v: exit %d\n%s", args, r.Code, r.Stderr)
		}
	}
	denied := k.Run(t, srv.Kubeconfig, "", "-n", ns, "--as=jane", "delete", "deployment", "audited")
	if denied.Code == 0 || !strings.Contains(denied.Stderr, "forbidden") {
		t.Fatalf("kubectl --as=jane delete: want forbidden, got exit %d\n%s", denied.Code, denied.Stderr)
	}

	want := map[string]func(auditEvent) bool{
		"create with its body": func(e auditEvent) bool {
			return e.Verb == "create" && e.Level == "Request" && e.ResponseStatus != nil && e.ResponseStatus.Code == 201 && len(e.RequestObject) > 0
		},
		"update (label)": func(e auditEvent) bool {
			return e.Verb == "patch" && e.ResponseStatus != nil && e.ResponseStatus.Code == 200 && strings.Contains(string(e.RequestObject), "tier")
		},
		"denial": func(e auditEvent) bool {
			return e.Verb == "delete" && e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "jane" && e.ResponseStatus != nil && e.ResponseStatus.Code == 403
		},
	}
	path := server.PathsIn(srv.DataDir).AuditLog
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := []string{}
		found := map[string]bool{}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		for sc.Scan() {
			var e auditEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("audit log line is not JSON: %v\n%s", err, sc.Text())
			}
			if e.Stage != "ResponseComplete" || e.ObjectRef == nil || e.ObjectRef.Resource != "deployments" || e.ObjectRef.Namespace != ns {
				continue
			}
			for name, match := range want {
				if match(e) {
					found[name] = true
				}
			}
		}
		f.Close()
		for name := range want {
			if !found[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log %s lacks: %v", path, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
