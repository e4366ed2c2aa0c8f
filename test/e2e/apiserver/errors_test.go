package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// rfc1123 is upstream's message for a name that is not a DNS subdomain.
const rfc1123 = `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`

// testBadInput sends what a user gets wrong and checks the answer is the one
// Kubernetes gives, word for word: through each kubectl, and as raw HTTPS.
func testBadInput(t *testing.T, srv *e2eutil.Server) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	client := srv.Client()
	ctx := e2eutil.Context(t, 2*time.Minute)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bad-input"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("bad-input").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "exists"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	badYAML := file("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n")
	badJSON := file("bad.json", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"`)
	gizmo := file("gizmo.yaml", "apiVersion: v1\nkind: Gizmo\nmetadata:\n  name: x\n  namespace: bad-input\n")
	badName := file("badname.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: bad-input\n")
	unknownField := file("unknown.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\n  namespace: bad-input\ndata:\n  a: b\nbogus: 1\n")
	exists := file("exists.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: exists\n  namespace: bad-input\n")
	stale := file("stale.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: exists\n  namespace: bad-input\n  resourceVersion: \"1\"\ndata:\n  a: b\n")

	for _, k := range e2eutil.Kubectls(t) {
		t.Run("kubectl-"+k.Name, func(t *testing.T) {
			c := kubectl{t: t, k: k, kubeconfig: srv.Kubeconfig}
			for _, tc := range []struct {
				name   string
				args   []string
				stderr string // the whole of stderr
			}{
				{"malformed YAML", []string{"apply", "-f", badYAML},
					"error: error parsing " + badYAML + ": error converting YAML to JSON: yaml: line 3: did not find expected ',' or ']'"},
				{"malformed JSON", []string{"apply", "-f", badJSON},
					"error: error parsing " + badJSON + ": unexpected EOF"},
				{"unknown kind", []string{"apply", "-f", gizmo},
					`error: resource mapping not found for name: "x" namespace: "bad-input" from "` + gizmo + `": no matches for kind "Gizmo" in version "v1"` + "\nensure CRDs are installed first"},
				{"invalid name", []string{"create", "-f", badName},
					`The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ` + rfc1123},
				{"unknown field, strict", []string{"create", "--validate=strict", "-f", unknownField},
					`Error from server (BadRequest): error when creating "` + unknownField + `": ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"`},
				{"already exists", []string{"create", "-f", exists},
					`Error from server (AlreadyExists): error when creating "` + exists + `": configmaps "exists" already exists`},
				{"stale resourceVersion", []string{"replace", "-f", stale},
					`Error from server (Conflict): error when replacing "` + stale + `": Operation cannot be fulfilled on configmaps "exists": the object has been modified; please apply your changes to the latest version and try again`},
				{"unknown resource", []string{"get", "gizmos"},
					`error: the server doesn't have a resource type "gizmos"`},
				{"unknown object", []string{"get", "-n", "bad-input", "configmap", "nope"},
					`Error from server (NotFound): configmaps "nope" not found`},
			} {
				r := c.fails(1, tc.args...)
				if got := strings.TrimRight(r.Stderr, "\n"); got != tc.stderr {
					t.Errorf("%s: kubectl %s:\nstderr: %s\nwant:   %s", tc.name, strings.Join(tc.args, " "), got, tc.stderr)
				}
			}
			// Without --validate=strict the unknown field is a warning and
			// the object is created.
			r := c.fails(0, "create", "--validate=warn", "-f", unknownField)
			wantLines(t, "unknown field, warn", r.Stdout, []string{"configmap/strict created"})
			wantMatch(t, "unknown field, warn", r.Stderr, `(?m)^Warning: unknown field "bogus"$`)
			c.ok("delete", "-n", "bad-input", "configmap", "strict")
		})
	}

	t.Run("http", func(t *testing.T) {
		h := srv.HTTPClient(true)
		cms := srv.URL + "/api/v1/namespaces/bad-input/configmaps"
		big, err := json.Marshal(corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "big"},
			Data:       map[string]string{"blob": strings.Repeat("x", 3<<20+1024)},
		})
		if err != nil {
			t.Fatal(err)
		}
		large, err := json.Marshal(corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "large"},
			Data:       map[string]string{"blob": strings.Repeat("x", 2<<20)},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, method, url, contentType, body string
			code                                 int
			reason                               metav1.StatusReason
			message                              string // a regular expression for the whole message
			causeField                           string
		}{
			{"malformed JSON", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap",`, 400, metav1.StatusReasonBadRequest,
				regexp.QuoteMeta(`the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({"apiVersion":"v1","kind":"Con ...)`), ""},
			{"malformed YAML", "POST", cms, "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n", 400, metav1.StatusReasonBadRequest,
				regexp.QuoteMeta(`the object provided is unrecognized (must be of type ConfigMap): yaml: line 3: did not find expected ',' or ']' (61706956657273696f6e3a2076310a6b696e643a20436f6e6669674d6170 ...)`), ""},
			// The scheme's name at the end differs by build (see the report).
			{"wrong kind", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"Gizmo","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest,
				regexp.QuoteMeta(`Gizmo in version "v1" cannot be handled as a ConfigMap: no kind "Gizmo" is registered for version "v1" in scheme "`) + `[^"]+"`, ""},
			{"invalid name", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`, 422, metav1.StatusReasonInvalid,
				regexp.QuoteMeta(`ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ` + rfc1123), "metadata.name"},
			{"unknown field, strict", "POST", cms + "?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"bogus":1}`, 400, metav1.StatusReasonBadRequest,
				regexp.QuoteMeta(`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"`), ""},
			{"already exists", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists"}}`, 409, metav1.StatusReasonAlreadyExists,
				regexp.QuoteMeta(`configmaps "exists" already exists`), ""},
			{"stale resourceVersion", "PUT", cms + "/exists", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists","resourceVersion":"1"}}`, 409, metav1.StatusReasonConflict,
				regexp.QuoteMeta(`Operation cannot be fulfilled on configmaps "exists": the object has been modified; please apply your changes to the latest version and try again`), ""},
			{"body over 3 MiB", "POST", cms, "application/json", string(big), 413, metav1.StatusReasonRequestEntityTooLarge,
				regexp.QuoteMeta(`Request entity too large: limit is 3145728`), ""},
			{"ConfigMap over 1 MiB", "POST", cms, "application/json", string(large), 422, metav1.StatusReasonInvalid,
				regexp.QuoteMeta(`ConfigMap "large" is invalid: []: Too long: may not be more than 1048576 bytes`), "[]"},
			{"unknown resource", "GET", srv.URL + "/api/v1/gizmos", "", "", 404, metav1.StatusReasonNotFound,
				regexp.QuoteMeta(`the server could not find the requested resource`), ""},
			{"unknown object", "GET", cms + "/nope", "", "", 404, metav1.StatusReasonNotFound,
				regexp.QuoteMeta(`configmaps "nope" not found`), ""},
		} {
			code, status, raw := do(t, h, tc.method, tc.url, tc.contentType, tc.body)
			if code != tc.code || status.Code != int32(tc.code) || status.Reason != tc.reason || status.Status != metav1.StatusFailure {
				t.Errorf("%s: HTTP %d, Status code %d reason %q status %q; want %d %q Failure\n%s", tc.name, code, status.Code, status.Reason, status.Status, tc.code, tc.reason, raw)
			}
			if !regexp.MustCompile("^" + tc.message + "$").MatchString(status.Message) {
				t.Errorf("%s: message %q, want it to match %q", tc.name, status.Message, tc.message)
			}
			if tc.causeField != "" && (status.Details == nil || len(status.Details.Causes) == 0 || status.Details.Causes[0].Field != tc.causeField) {
				t.Errorf("%s: want a cause for field %q, got details %+v", tc.name, tc.causeField, status.Details)
			}
		}
		// An unknown API group is not served at all: a plain-text 404.
		code, _, raw := do(t, h, "GET", srv.URL+"/apis/nope.example.com/v1/things", "", "")
		if code != 404 || strings.TrimSpace(raw) != "404 page not found" {
			t.Errorf("unknown group: HTTP %d %q, want 404 \"404 page not found\"", code, raw)
		}
	})

	t.Run("client-go", func(t *testing.T) {
		cms := client.CoreV1().ConfigMaps("bad-input")
		cm, err := cms.Get(ctx, "exists", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old := cm.DeepCopy()
		cm.Data = map[string]string{"a": "1"}
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		old.Data = map[string]string{"a": "2"}
		_, err = cms.Update(ctx, old, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			t.Errorf("update with a stale resourceVersion: %v, want a Conflict", err)
		}
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "exists"}}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			t.Errorf("create of an existing object: %v, want AlreadyExists", err)
		}
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "-bad-"}}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("create with an invalid name: %v, want Invalid", err)
		}
	})
}

// do sends one request and decodes the Status it answers with.
func do(t *testing.T, h *http.Client, method, url, contentType, body string) (int, metav1.Status, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	_ = json.Unmarshal(raw, &st)
	return resp.StatusCode, st, string(raw)
}

// testAnonymous checks what a client without credentials may see: the
// health endpoints, and nothing else.
func testAnonymous(t *testing.T, srv *e2eutil.Server) {
	h := srv.HTTPClient(false)
	for _, path := range []string{"/readyz", "/livez", "/healthz"} {
		code, _, raw := do(t, h, "GET", srv.URL+path, "", "")
		if code != 200 || raw != "ok" {
			t.Errorf("anonymous GET %s: %d %q, want 200 \"ok\"", path, code, raw)
		}
	}
	for _, path := range []string{"/api/v1/namespaces", "/version", "/apis", "/api/v1/namespaces/kube-system/secrets", "/metrics"} {
		code, st, raw := do(t, h, "GET", srv.URL+path, "", "")
		if code != 401 || st.Reason != metav1.StatusReasonUnauthorized || st.Message != "Unauthorized" {
			t.Errorf("anonymous GET %s: %d %s, want 401 Unauthorized", path, code, raw)
		}
	}
	code, st, raw := do(t, h, "POST", srv.URL+"/api/v1/namespaces", "application/json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"anon"}}`)
	if code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("anonymous POST /api/v1/namespaces: %d %s, want 401", code, raw)
	}
}
