package override

import (
	"reflect"
	"strings"
	"testing"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

func TestRewriteImage(t *testing.T) {
	const (
		add     = v1alpha1.OverriderOpAdd
		replace = v1alpha1.OverriderOpReplace
		remove  = v1alpha1.OverriderOpRemove
	)
	tests := []struct {
		image     string
		component v1alpha1.ImageComponent
		op        v1alpha1.OverriderOperator
		value     string
		want      string // or the error's text
	}{
		{"nginx", v1alpha1.Registry, add, "mirror.example.com", "mirror.example.com/nginx"},
		{"docker.io/library/nginx:1.25", v1alpha1.Registry, add, ".cn", "docker.io.cn/library/nginx:1.25"},
		{"docker.io/library/nginx:1.25", v1alpha1.Registry, replace, "mirror.example.com", "mirror.example.com/library/nginx:1.25"},
		{"localhost/app", v1alpha1.Registry, replace, "r.example", "r.example/app"},
		{"localhost:5000/team/app:v1", v1alpha1.Registry, remove, "", "team/app:v1"},
		{"team/app:v1", v1alpha1.Registry, remove, "", "team/app:v1"},
		{"quay.io/team/app:v1", v1alpha1.Repository, add, "-fips", "quay.io/team/app-fips:v1"},
		{"quay.io/team/app:v1", v1alpha1.Repository, replace, "other/app", "quay.io/other/app:v1"},
		{"quay.io/team/app:v1", v1alpha1.Repository, remove, "", "the repository cannot be removed"},
		{"quay.io/team/app:v1", v1alpha1.Repository, replace, "", `image "quay.io/team/app:v1" would have no repository`},
		{"nginx:1.25", v1alpha1.Tag, add, "-alpine", "nginx:1.25-alpine"},
		{"nginx", v1alpha1.Tag, add, "latest", "nginx:latest"},
		{"host:5000/nginx", v1alpha1.Tag, replace, "1.26", "host:5000/nginx:1.26"},
		{"nginx:1.25@sha256:aaa", v1alpha1.Tag, replace, "1.26", "nginx:1.26"},
		{"nginx:1.25", v1alpha1.Tag, replace, "sha256:bbb", "nginx@sha256:bbb"},
		{"nginx:1.25@sha256:aaa", v1alpha1.Tag, remove, "", "nginx"},
		{"nginx@sha256:aaa", v1alpha1.Registry, add, "r.example", "r.example/nginx@sha256:aaa"},
		{"nginx", "Digest", replace, "x", `component "Digest": want Registry, Repository or Tag`},
		{"nginx", v1alpha1.Tag, "set", "x", `operator "set": want add, replace or remove`},
	}
	for _, tt := range tests {
		t.Run(tt.image+" "+string(tt.component)+" "+string(tt.op), func(t *testing.T) {
			got, err := rewrite(tt.image, v1alpha1.ImageOverrider{Component: tt.component, Operator: tt.op, Value: tt.value})
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("rewrite = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestImageOverrider(t *testing.T) {
	tag := v1alpha1.ImageOverrider{Component: v1alpha1.Tag, Operator: v1alpha1.OverriderOpReplace, Value: "new"}
	at := func(path string) v1alpha1.ImageOverrider {
		o := tag
		o.Predicate = &v1alpha1.ImagePredicate{Path: path}
		return o
	}
	tests := []struct {
		name string
		obj  string
		o    v1alpha1.ImageOverrider
		want string // the object after, or the error's text
	}{
		{
			name: "pod containers and init containers",
			obj:  `{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "a:1"}, {"name": "no-image"}], "initContainers": [{"image": "b"}], "ephemeralContainers": [{"image": "c"}]}}`,
			o:    tag,
			want: `{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "a:new"}, {"name": "no-image"}], "initContainers": [{"image": "b:new"}], "ephemeralContainers": [{"image": "c"}]}}`,
		},
		{
			name: "statefulset",
			obj:  `{"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": {"containers": [{"image": "db"}]}}}}`,
			o:    tag,
			want: `{"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": {"containers": [{"image": "db:new"}]}}}}`,
		},
		{
			name: "cronjob",
			obj:  `{"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "job"}]}}}}}}`,
			o:    tag,
			want: `{"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "job:new"}]}}}}}}`,
		},
		{
			name: "no pod template",
			obj:  `{"apiVersion": "v1", "kind": "ConfigMap", "data": {"image": "x"}}`,
			o:    tag,
			want: `{"apiVersion": "v1", "kind": "ConfigMap", "data": {"image": "x"}}`,
		},
		{
			name: "workload without template",
			obj:  `{"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}}`,
			o:    tag,
			want: `{"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}}`,
		},
		{
			name: "predicate",
			obj:  `{"apiVersion": "example.com/v1", "kind": "App", "spec": {"images": [{"ref": "a:1"}, {"ref": "b:1"}], "x~/y": "c"}}`,
			o:    at("/spec/images/1/ref"),
			want: `{"apiVersion": "example.com/v1", "kind": "App", "spec": {"images": [{"ref": "a:1"}, {"ref": "b:new"}], "x~/y": "c"}}`,
		},
		{
			name: "predicate with escapes",
			obj:  `{"apiVersion": "example.com/v1", "kind": "App", "spec": {"x~/y": "c"}}`,
			o:    at("/spec/x~0~1y"),
			want: `{"apiVersion": "example.com/v1", "kind": "App", "spec": {"x~/y": "c:new"}}`,
		},
		{
			name: "predicate not found",
			obj:  `{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "a"}]}}`,
			o:    at("/spec/containers/1/image"),
			want: `path "/spec/containers/1/image": not found`,
		},
		{
			name: "predicate not a string",
			obj:  `{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "a"}]}}`,
			o:    at("/spec/containers/0"),
			want: `path "/spec/containers/0": not a string`,
		},
		{
			name: "predicate not a pointer",
			obj:  `{"apiVersion": "v1", "kind": "Pod"}`,
			o:    at("spec"),
			want: `path "spec": a JSON pointer starts with /`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := parse(t, tt.obj)
			err := overrideImages(obj, tt.o)
			if err != nil {
				if err.Error() != tt.want {
					t.Errorf("error %q, want %q", err, tt.want)
				}
				return
			}
			if want := parse(t, tt.want); !reflect.DeepEqual(obj.Object, want.Object) {
				t.Errorf("got  %s\nwant %s", show(obj), show(want))
			}
		})
	}
}

func TestCommandArgsOverrider(t *testing.T) {
	tests := []struct {
		name    string
		field   string
		o       v1alpha1.CommandArgsOverrider
		command any
		args    any
		err     string
	}{
		{"add command", "command", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpAdd, Value: []string{"--port", "80"}},
			[]any{"serve", "--port", "80"}, []any{"-v"}, ""},
		{"add args", "args", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpAdd, Value: []string{"-q"}},
			[]any{"serve"}, []any{"-v", "-q"}, ""},
		{"remove args to nothing", "args", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpRemove, Value: []string{"-v", "absent"}},
			[]any{"serve"}, nil, ""},
		{"remove command entry", "command", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpRemove, Value: []string{"nothing"}},
			[]any{"serve"}, []any{"-v"}, ""},
		{"other container", "command", v1alpha1.CommandArgsOverrider{ContainerName: "missing", Operator: v1alpha1.OverriderOpAdd, Value: []string{"x"}},
			[]any{"serve"}, []any{"-v"}, ""},
		{"init containers are not changed", "command", v1alpha1.CommandArgsOverrider{ContainerName: "setup", Operator: v1alpha1.OverriderOpAdd, Value: []string{"x"}},
			[]any{"serve"}, []any{"-v"}, ""},
		{"bad operator", "args", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpReplace},
			nil, nil, `operator "replace": want add or remove`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := parse(t, deployment)
			err := overrideList(obj, tt.field, tt.o)
			if tt.err != "" || err != nil {
				if err == nil || err.Error() != tt.err {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			spec := podSpec(obj)
			app := containers(spec, "containers")[0]
			if !reflect.DeepEqual(app["command"], tt.command) || !reflect.DeepEqual(app["args"], tt.args) {
				t.Errorf("command %v args %v, want %v %v", app["command"], app["args"], tt.command, tt.args)
			}
			if setup := containers(spec, "initContainers")[0]; len(setup) != 2 {
				t.Errorf("init container changed: %v", setup)
			}
		})
	}
	// A kind without a pod template is left alone.
	cm := parse(t, `{"apiVersion": "v1", "kind": "ConfigMap"}`)
	if err := overrideList(cm, "args", v1alpha1.CommandArgsOverrider{ContainerName: "app", Operator: v1alpha1.OverriderOpAdd, Value: []string{"x"}}); err != nil || len(cm.Object) != 2 {
		t.Errorf("ConfigMap: %v, %s", err, show(cm))
	}
}

func TestLabelsAnnotationsOverrider(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		o      v1alpha1.LabelAnnotationOverrider
		want   map[string]string
		err    string
	}{
		{"add", map[string]string{"a": "1"}, v1alpha1.LabelAnnotationOverrider{Operator: v1alpha1.OverriderOpAdd, Value: map[string]string{"a": "2", "b": "3"}},
			map[string]string{"a": "2", "b": "3"}, ""},
		{"add to none", nil, v1alpha1.LabelAnnotationOverrider{Operator: v1alpha1.OverriderOpAdd, Value: map[string]string{"b": "3"}},
			map[string]string{"b": "3"}, ""},
		{"replace only present keys", map[string]string{"a": "1"}, v1alpha1.LabelAnnotationOverrider{Operator: v1alpha1.OverriderOpReplace, Value: map[string]string{"a": "2", "b": "3"}},
			map[string]string{"a": "2"}, ""},
		{"remove", map[string]string{"a": "1", "b": "2"}, v1alpha1.LabelAnnotationOverrider{Operator: v1alpha1.OverriderOpRemove, Value: map[string]string{"a": "", "c": ""}},
			map[string]string{"b": "2"}, ""},
		{"remove the last", map[string]string{"a": "1"}, v1alpha1.LabelAnnotationOverrider{Operator: v1alpha1.OverriderOpRemove, Value: map[string]string{"a": ""}},
			nil, ""},
		{"bad operator", nil, v1alpha1.LabelAnnotationOverrider{Operator: "merge"}, nil, `operator "merge": want add, replace or remove`},
	}
	for _, tt := range tests {
		for _, field := range []string{"labels", "annotations"} {
			t.Run(tt.name+" "+field, func(t *testing.T) {
				obj := parse(t, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}`)
				o := v1alpha1.Overriders{}
				if field == "labels" {
					obj.SetLabels(tt.labels)
					o.LabelsOverrider = []v1alpha1.LabelAnnotationOverrider{tt.o}
				} else {
					obj.SetAnnotations(tt.labels)
					o.AnnotationsOverrider = []v1alpha1.LabelAnnotationOverrider{tt.o}
				}
				err := applyRule(obj, &o)
				if tt.err != "" || err != nil {
					if err == nil || !strings.HasSuffix(err.Error(), tt.err) {
						t.Errorf("error %v, want one ending %q", err, tt.err)
					}
					return
				}
				got := obj.GetLabels()
				if field == "annotations" {
					got = obj.GetAnnotations()
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s = %v, want %v", field, got, tt.want)
				}
				if _, ok := obj.Object["metadata"].(map[string]any)[field]; ok == (tt.want == nil) {
					t.Errorf("metadata.%s present = %v", field, ok)
				}
			})
		}
	}
}

func TestPlaintextOverrider(t *testing.T) {
	const svc = `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}`
	tests := []struct {
		name string
		ops  []v1alpha1.PlaintextOverrider
		want string // the object after, or the error's text
	}{
		{
			name: "replace, add, remove",
			ops: []v1alpha1.PlaintextOverrider{
				plaintext(v1alpha1.OverriderOpReplace, "/spec/type", `"LoadBalancer"`),
				plaintext(v1alpha1.OverriderOpAdd, "/spec/ports/-", `{"port": 443}`),
				plaintext(v1alpha1.OverriderOpAdd, "/metadata/annotations", `{"lb": "internal"}`),
				plaintext(v1alpha1.OverriderOpRemove, "/spec/ports/0", ""),
			},
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "annotations": {"lb": "internal"}}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}`,
		},
		{
			name: "no value is null",
			ops:  []v1alpha1.PlaintextOverrider{plaintext(v1alpha1.OverriderOpAdd, "/spec/selector", "")},
			want: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}], "selector": null}}`,
		},
		{
			name: "replace a missing key",
			ops:  []v1alpha1.PlaintextOverrider{plaintext(v1alpha1.OverriderOpReplace, "/spec/clusterIP", `"None"`)},
			want: `plaintext[0]: path "/spec/clusterIP": replace operation does not apply: doc is missing key: /spec/clusterIP: missing value`,
		},
		{
			name: "remove a missing key",
			ops: []v1alpha1.PlaintextOverrider{
				plaintext(v1alpha1.OverriderOpAdd, "/spec/clusterIP", `"None"`),
				plaintext(v1alpha1.OverriderOpRemove, "/spec/selector", ""),
			},
			want: `plaintext[1]: path "/spec/selector": error in remove for path: '/spec/selector': unable to remove nonexistent key: selector: missing value`,
		},
		{
			name: "add under a missing parent",
			ops:  []v1alpha1.PlaintextOverrider{plaintext(v1alpha1.OverriderOpAdd, "/status/loadBalancer/ingress", `[]`)},
			want: `plaintext[0]: path "/status/loadBalancer/ingress": add operation does not apply: doc is missing path: "/status/loadBalancer/ingress": missing value`,
		},
		{
			name: "bad operator",
			ops:  []v1alpha1.PlaintextOverrider{plaintext("move", "/spec", "")},
			want: `plaintext[0]: operator "move": want add, replace or remove`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := parse(t, svc)
			err := patch(obj, tt.ops)
			if err != nil {
				if err.Error() != tt.want {
					t.Errorf("error %q\nwant  %q", err, tt.want)
				}
				return
			}
			want := parse(t, tt.want)
			if !reflect.DeepEqual(obj.Object, want.Object) {
				t.Errorf("got  %s\nwant %s", show(obj), show(want))
			}
			// Numbers stay int64, as the API machinery decodes them.
			if port := obj.Object["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any)["port"]; reflect.TypeOf(port).Kind() != reflect.Int64 {
				t.Errorf("port is a %T", port)
			}
		})
	}
}
