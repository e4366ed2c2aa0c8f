package server_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	// The API groups the API server serves register into legacyscheme.
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	_ "k8s.io/kubernetes/pkg/apis/rbac/install"
)

// Seeds: what clients send, in each encoding the API server accepts.
var decodeSeeds = []string{
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1.25","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}`,
	`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":0}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}`,
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n    command: [sh, -c, 'echo hi']\n",
	"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n",
	`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}]}`,
	`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}}}`,
	`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":"http","nodePort":30080}]}}`,
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":null,"bogus":1}}`,
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\",\"name\":\"y\"}}",
	"",
	"k8s\x00",
}

// FuzzDecode feeds arbitrary bytes to the decoders the API server uses for
// request bodies: the universal deserializer, the universal decoder (decode,
// default, convert to the internal version), and every media type's normal
// and strict serializer converting to the internal version, as a create
// request's handler does. Whatever decodes is encoded back to its external
// version, as a response would be. Nothing may panic.
func FuzzDecode(f *testing.F) {
	codecs := legacyscheme.Codecs
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	// A protobuf-encoded pod, so the fuzzer starts past the magic prefix.
	if info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf); ok {
		obj, _, err := codecs.UniversalDeserializer().Decode([]byte(decodeSeeds[0]), nil, nil)
		if err != nil {
			f.Fatal(err)
		}
		data, err := runtime.Encode(info.Serializer, obj)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}

	var decoders []runtime.Decoder
	decoders = append(decoders, codecs.UniversalDeserializer(), codecs.UniversalDecoder())
	for _, info := range codecs.SupportedMediaTypes() {
		decoders = append(decoders, codecs.DecoderToVersion(info.Serializer, runtime.InternalGroupVersioner))
		if info.StrictSerializer != nil {
			decoders = append(decoders, codecs.DecoderToVersion(info.StrictSerializer, runtime.InternalGroupVersioner))
		}
	}
	encoder := codecs.LegacyCodec(legacyscheme.Scheme.PrioritizedVersionsAllGroups()...)

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range decoders {
			obj, gvk, err := d.Decode(data, nil, nil)
			if err != nil {
				continue
			}
			if obj == nil || gvk == nil {
				t.Fatalf("%T decoded without error but returned object %v, kind %v", d, obj, gvk)
			}
			encoded, err := runtime.Encode(encoder, obj)
			if err != nil {
				continue
			}
			// What the server encoded it must decode again (a v1 List is
			// only a client-side convenience and is not registered for that).
			isList := *gvk == schema.GroupVersionKind{Version: "v1", Kind: "List"}
			if _, _, err := codecs.UniversalDecoder().Decode(encoded, nil, nil); err != nil && !isList {
				t.Errorf("re-decode of the encoded %v failed: %v\nencoded: %q", gvk, err, encoded)
			}
		}
	})
}
