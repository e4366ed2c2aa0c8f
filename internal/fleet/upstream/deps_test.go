package upstream

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDependencies(t *testing.T) {
	d := decode(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      serviceAccountName: web
      imagePullSecrets: [{name: pull}]
      volumes:
      - {name: a, configMap: {name: conf}}
      - {name: b, secret: {secretName: tls}}
      - {name: c, persistentVolumeClaim: {claimName: data}}
      - {name: d, projected: {sources: [{configMap: {name: extra}}, {secret: {name: tls}}]}}
      initContainers:
      - {name: init, envFrom: [{secretRef: {name: env}}]}
      containers:
      - name: web
        env:
        - {name: A_X, valueFrom: {configMapKeyRef: {name: conf, key: x}}}
        - {name: A_Y, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
`)
	got := fmt.Sprint(dependencies(d))
	want := "[[ConfigMap conf] [ConfigMap extra] [PersistentVolumeClaim data] [Secret env] [Secret pull] [Secret tls] [ServiceAccount web]]"
	if got != want {
		t.Errorf("dependencies = %s\nwant %s", got, want)
	}
	cj := decode(t, `
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {serviceAccountName: default, containers: [{name: a, envFrom: [{configMapRef: {name: c}}]}]}}}}}
`)
	if got := fmt.Sprint(dependencies(cj)); got != "[[ConfigMap c]]" {
		t.Errorf("CronJob dependencies = %s", got)
	}
	if got := dependencies(decode(t, `{kind: ConfigMap, data: {a: b}}`)); got != nil {
		t.Errorf("a ConfigMap has dependencies %v", got)
	}
}

func TestWorkload(t *testing.T) {
	for _, c := range []struct {
		obj      string
		replicas int32
		request  string
	}{
		{`{kind: Deployment, spec: {replicas: 3, template: {spec: {containers: [{name: a, resources: {requests: {cpu: 100m}}}, {name: b, resources: {requests: {cpu: 150m, memory: 1Gi}}}]}}}}`, 3, "map[cpu:{250m} memory:{1Gi}]"},
		{`{kind: Deployment, spec: {template: {spec: {containers: [{name: a}]}}}}`, 1, "map[]"},
		{`{kind: StatefulSet, spec: {replicas: 0, template: {spec: {containers: [{name: a}]}}}}`, 0, "map[]"},
		{`{kind: ConfigMap, data: {a: b}}`, 0, "map[]"},
	} {
		n, req := workload(decode(t, c.obj))
		got := map[string]string{}
		for k, v := range req {
			got[string(k)] = "{" + v.String() + "}"
		}
		if n != c.replicas || fmt.Sprint(got) != c.request {
			t.Errorf("workload(%s) = %d, %v; want %d, %s", c.obj, n, got, c.replicas, c.request)
		}
	}
}
