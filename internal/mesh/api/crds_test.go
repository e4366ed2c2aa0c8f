package api

import (
	"context"
	"slices"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

func TestCRDs(t *testing.T) {
	all, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"authorizationpolicies.mesh.skiff.dev": {"Action", "Age"},
		"peerauthentications.mesh.skiff.dev":   {"Mode", "Age"},
	}
	if len(all) != len(want) {
		t.Fatalf("%d CRDs, want %d", len(all), len(want))
	}
	for _, c := range all {
		columns, ok := want[c.Name]
		if !ok || c.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("CRD %s scope %s; want one of %v, Namespaced", c.Name, c.Spec.Scope, want)
			continue
		}
		if len(c.Spec.Versions) != 1 || c.Spec.Versions[0].Name != "v1alpha1" || c.Spec.Versions[0].Schema == nil {
			t.Fatalf("CRD %s: want one version v1alpha1 with a schema", c.Name)
		}
		var got []string
		for _, col := range c.Spec.Versions[0].AdditionalPrinterColumns {
			got = append(got, col.Name)
		}
		if !slices.Equal(got, columns) {
			t.Errorf("CRD %s printer columns %v; want %v", c.Name, got, columns)
		}
	}
}

// TestCRDsValid runs the API server's own validation of a CRD on ours: a
// structural schema, CEL rules that compile and whose estimated cost is
// within the per-rule and per-CRD budgets.
func TestCRDsValid(t *testing.T) {
	all, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, crd := range all {
		in := internalCRD(t, crd)
		in.Status.StoredVersions = []string{"v1alpha1"} // the API server's doing, on create
		if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), in); len(errs) > 0 {
			t.Errorf("CRD %s is invalid:\n%v", crd.Name, errs.ToAggregate())
		}
		b, _ := yaml.Marshal(crd.Spec.Versions[0].Schema)
		rules += strings.Count(string(b), "rule: ")
	}
	if rules < 20 {
		t.Errorf("%d CEL rules in the CRDs; the types' XValidation markers are missing", rules)
	}
}

func internalCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *apiextensions.CustomResourceDefinition {
	t.Helper()
	out := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// apiServer does to a custom resource what the API server does before it
// stores it: prune unknown fields, apply defaults, validate the OpenAPI
// schema, evaluate the CEL rules.
type apiServer struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

func newAPIServer(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) apiServer {
	t.Helper()
	props := internalCRD(t, crd).Spec.Validation.OpenAPIV3Schema
	s, err := structuralschema.NewStructural(props)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		t.Fatal(err)
	}
	return apiServer{structural: s, schema: v, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}
}

// admit returns the object as stored, the fields it pruned and the errors
// that refuse it.
func (a apiServer) admit(t *testing.T, manifest string) (map[string]any, []string, field.ErrorList) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	pruned := pruning.PruneWithOptions(obj, a.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	defaulting.Default(obj, a.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, a.schema)
	celErrs, _ := a.cel.Validate(context.Background(), nil, a.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return obj, pruned, append(errs, celErrs...)
}

func servers(t *testing.T) map[string]apiServer {
	t.Helper()
	all, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]apiServer{}
	for _, crd := range all {
		out[crd.Spec.Names.Kind] = newAPIServer(t, crd)
	}
	return out
}

func manifest(kind, spec string) string {
	return "apiVersion: mesh.skiff.dev/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: p\n  namespace: default\nspec:\n" + spec
}

// TestAdmission is the API's admission-time validation as a specification:
// each case is a spec and the field paths and messages the API server
// answers with (none: accepted).
func TestAdmission(t *testing.T) {
	const ap, pa = "AuthorizationPolicy", "PeerAuthentication"
	servers := servers(t)
	for _, c := range []struct {
		name string
		kind string
		spec string
		want []string // substrings of the errors; empty: accepted
	}{
		// AuthorizationPolicy: accepted.
		{name: "empty spec: allow nothing", kind: ap, spec: "  {}\n"},
		{name: "allow all", kind: ap, spec: "  rules:\n  - {}\n"},
		{name: "Istio's example, without the JWT condition", kind: ap, spec: `
  selector:
    matchLabels: {app: httpbin, version: v1}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep", "cluster.local/ns/dev/*", "*/sa/web", "*"]
    - source:
        namespaces: ["test", "team-*"]
        notIpBlocks: ["203.0.113.4", "2001:db8::/32"]
        ipBlocks: ["10.0.0.0/8"]
        remoteIpBlocks: ["192.0.2.0/24"]
    to:
    - operation:
        methods: ["GET", "HEAD"]
        paths: ["/info*", "*.png", "/data"]
        hosts: ["*.example.com", "Example.org"]
        ports: ["8080", "1", "65535"]
        notPorts: ["9090"]
    when:
    - key: source.ip
      values: ["10.1.0.0/16", "10.2.3.4"]
    - key: destination.port
      notValues: ["15000"]
    - key: request.headers[X-Tenant]
      values: ["blue*"]
    - key: source.namespace
      values: ["prod"]
    - key: source.principal
      notValues: ["*/sa/admin"]
`},
		{name: "DENY", kind: ap, spec: "  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [POST]\n        ports: [\"8080\"]\n"},

		// AuthorizationPolicy: refused.
		{name: "AUDIT", kind: ap, spec: "  action: AUDIT\n", want: []string{"spec.action", "does not support the AUDIT and CUSTOM actions"}},
		{name: "CUSTOM with a provider", kind: ap, spec: "  action: CUSTOM\n  provider:\n    name: ext-authz\n",
			want: []string{"spec.action", "does not support the AUDIT and CUSTOM", "spec.provider", "external authorizers"}},
		{name: "unknown action", kind: ap, spec: "  action: LOG\n", want: []string{"spec.action", `Unsupported value: "LOG"`}},
		{name: "targetRefs", kind: ap, spec: "  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n", want: []string{"spec.targetRefs", "no waypoint proxies"}},
		{name: "targetRef", kind: ap, spec: "  targetRef:\n    kind: Service\n    name: web\n", want: []string{"spec.targetRef", "no waypoint proxies"}},
		{name: "requestPrincipals", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n",
			want: []string{"spec.rules[0].from[0].source.requestPrincipals", "no request authentication (JWT)"}},
		{name: "notRequestPrincipals", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        notRequestPrincipals: [\"a/b\"]\n",
			want: []string{"spec.rules[0].from[0].source.notRequestPrincipals", "no request authentication (JWT)"}},
		{name: "serviceAccounts", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        serviceAccounts: [default/web]\n",
			want: []string{"spec.rules[0].from[0].source.serviceAccounts", "write principals"}},
		{name: "trustDomains", kind: ap, spec: "  rules:\n  - from:\n    - {}\n    - source:\n        notTrustDomains: [other.local]\n",
			want: []string{"spec.rules[0].from[1].source.notTrustDomains", "one trust domain"}},
		{name: "a '*' inside a principal", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/*/sa/web\"]\n",
			want: []string{"spec.rules[0].from[0].source.principals[0]", "principals: each is exact, PREFIX*, *SUFFIX or *"}},
		{name: "a '*' at both ends", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        notNamespaces: [ok, \"*dev*\"]\n",
			want: []string{"spec.rules[0].from[0].source.notNamespaces[1]", "notNamespaces: each is exact"}},
		{name: "an empty namespace", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"\"]\n",
			want: []string{"spec.rules[0].from[0].source.namespaces[0]", "at least 1 chars long"}},
		{name: "a path template", kind: ap, spec: "  rules:\n  - to:\n    - operation:\n        paths: [\"/foo/{*}\"]\n",
			want: []string{"spec.rules[0].to[0].operation.paths[0]", "path templates {*} and {**}"}},
		{name: "a '*' inside a host", kind: ap, spec: "  rules:\n  - to:\n    - operation:\n        notHosts: [\"api.*.example.com\"]\n",
			want: []string{"spec.rules[0].to[0].operation.notHosts[0]", "notHosts: each is exact"}},
		{name: "ports out of range or named", kind: ap, spec: "  rules:\n  - to:\n    - operation:\n        ports: [\"0\", \"65536\", \"http\", \"80\"]\n",
			want: []string{"operation.ports[0]", "operation.ports[1]", "operation.ports[2]", "ports: each is a port number from 1 to 65535"}},
		{name: "a notPort too long", kind: ap, spec: "  rules:\n  - to:\n    - operation:\n        notPorts: [\"123456\"]\n",
			want: []string{"operation.notPorts[0]", "may not be more than 5"}},
		{name: "methods: empty or wildcard", kind: ap, spec: "  rules:\n  - to:\n    - operation:\n        methods: [\"\", \"*\"]\n        notMethods: [\"GET POST\"]\n",
			want: []string{"operation.methods[0]", "operation.methods[1]", "operation.notMethods[0]", "non-empty HTTP method"}},
		{name: "ipBlocks that are neither IPs nor CIDRs", kind: ap, spec: "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/33\", \"example.com\"]\n        notRemoteIpBlocks: [\"10.0.0.256\"]\n",
			want: []string{"source.ipBlocks[0]", "source.ipBlocks[1]", "ipBlocks: each is an IP address or a CIDR", "source.notRemoteIpBlocks[0]"}},
		{name: "a JWT condition", kind: ap, spec: "  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: [\"https://accounts.google.com\"]\n",
			want: []string{"spec.rules[0].when[0].key", "skiff supports source.ip, source.namespace, source.principal, destination.port and request.headers[NAME]"}},
		{name: "remote.ip and an empty header name", kind: ap, spec: "  rules:\n  - when:\n    - key: remote.ip\n      values: [\"10.0.0.1\"]\n    - key: request.headers[]\n      values: [a]\n",
			want: []string{"spec.rules[0].when[0].key", "spec.rules[0].when[1].key"}},
		{name: "a condition without values", kind: ap, spec: "  rules:\n  - when:\n    - key: source.namespace\n",
			want: []string{"spec.rules[0].when[0]", "a condition needs values or notValues"}},
		{name: "source.ip values", kind: ap, spec: "  rules:\n  - when:\n    - key: source.ip\n      values: [\"10.0.0.1\", \"nope\"]\n      notValues: [\"::1/200\"]\n",
			want: []string{"spec.rules[0].when[0].values", "source.ip takes IP addresses or CIDRs", "spec.rules[0].when[0].notValues"}},
		{name: "destination.port values", kind: ap, spec: "  rules:\n  - when:\n    - key: destination.port\n      values: [\"70000\"]\n",
			want: []string{"spec.rules[0].when[0].values", "destination.port takes port numbers"}},
		{name: "a '*' inside a header value", kind: ap, spec: "  rules:\n  - when:\n    - key: request.headers[x-user]\n      notValues: [\"a*b\"]\n",
			want: []string{"spec.rules[0].when[0].notValues", "notValues: each is exact"}},
		{name: "a wildcard selector", kind: ap, spec: "  selector:\n    matchLabels:\n      app: \"web*\"\n",
			want: []string{"spec.selector.matchLabels", "values hold no '*'"}},
		{name: "too many rules", kind: ap, spec: "  rules:\n" + strings.Repeat("  - {}\n", 33),
			want: []string{"spec.rules", "must have at most 32 items"}},

		// PeerAuthentication.
		{name: "mesh-wide STRICT", kind: pa, spec: "  mtls:\n    mode: STRICT\n"},
		{name: "empty", kind: pa, spec: "  {}\n"},
		{name: "port-level with a selector", kind: pa, spec: "  selector:\n    matchLabels: {app: web}\n  mtls:\n    mode: UNSET\n  portLevelMtls:\n    \"8080\":\n      mode: DISABLE\n    \"9090\": {}\n"},
		{name: "lower-case mode", kind: pa, spec: "  mtls:\n    mode: strict\n", want: []string{"spec.mtls.mode", `Unsupported value: "strict"`}},
		{name: "port-level without a selector", kind: pa, spec: "  portLevelMtls:\n    \"8080\":\n      mode: STRICT\n",
			want: []string{"spec.portLevelMtls", "needs a selector with matchLabels"}},
		{name: "port-level with an empty selector", kind: pa, spec: "  selector: {}\n  portLevelMtls:\n    \"8080\":\n      mode: STRICT\n",
			want: []string{"spec.portLevelMtls", "needs a selector with matchLabels"}},
		{name: "port-level keys not ports", kind: pa, spec: "  selector:\n    matchLabels: {app: web}\n  portLevelMtls:\n    http:\n      mode: STRICT\n    \"0\":\n      mode: STRICT\n",
			want: []string{"spec.portLevelMtls", "keys are port numbers from 1 to 65535"}},
		{name: "port-level empty", kind: pa, spec: "  selector:\n    matchLabels: {app: web}\n  portLevelMtls: {}\n",
			want: []string{"spec.portLevelMtls", "at least 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, errs := servers[c.kind].admit(t, manifest(c.kind, c.spec))
			got := errs.ToAggregate()
			if len(c.want) == 0 {
				if got != nil {
					t.Fatalf("refused: %v", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("accepted; want errors with %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("errors do not mention %q:\n%v", w, got)
				}
			}
		})
	}
}

// TestAdmissionStores checks what the API server keeps of a policy: the
// default action, and nothing pruned from an Istio manifest that uses only
// what skiff supports.
func TestAdmissionStores(t *testing.T) {
	s := servers(t)["AuthorizationPolicy"]
	obj, pruned, errs := s.admit(t, manifest("AuthorizationPolicy", `
  selector:
    matchLabels: {app: web}
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/a/sa/b"], notNamespaces: [c], ipBlocks: ["10.0.0.0/8"], notIpBlocks: ["10.1.0.0/16"], remoteIpBlocks: ["10.0.0.0/8"], notRemoteIpBlocks: ["10.2.0.0/16"], notPrincipals: [x]}
    to:
    - operation: {hosts: [a], notHosts: [b], ports: ["1"], notPorts: ["2"], methods: [GET], notMethods: [PUT], paths: [/a], notPaths: [/b]}
    when:
    - {key: source.principal, values: [a], notValues: [b]}
`))
	if len(errs) > 0 || len(pruned) > 0 {
		t.Fatalf("refused %v, pruned %v", errs, pruned)
	}
	if got := obj["spec"].(map[string]any)["action"]; got != "ALLOW" {
		t.Errorf("stored action %v; want the default ALLOW", got)
	}
}
