package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/skiffdev/skiff/internal/pki"
	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

var widgetGVK = schema.GroupVersionKind{Group: "example.skiff.dev", Version: "v1", Kind: "Widget"}

const widgetFinalizer = "example.skiff.dev/farewell"

// TestOperator runs a controller-runtime operator (sigs.k8s.io/controller-
// runtime, leader-elected, as operators are built) against a real server:
// a CRD with a status subresource, a mutating webhook (defaults spec.size,
// labels), a validating webhook (refuses spec.size over 10), a reconciler
// that adds a finalizer, owns a ConfigMap and sets a Ready condition, and
// on deletion leaves a farewell before removing its finalizer. Objects are
// applied and deleted with kubectl.
func TestOperator(t *testing.T) {
	srv := e2eutil.StartServer(t, e2eutil.ServerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k := e2eutil.Kubectls(t)[0]
	ext, err := apiextensions.NewForConfig(srv.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgetCRD(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the Widget CRD Established", func() bool {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.skiff.dev", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true
			}
		}
		return false
	})

	// The webhook server's certificate, from a CA of the test's own.
	certDir := t.TempDir()
	ca, err := pki.EnsureCA(certDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Ensure(certDir, "tls", pki.Leaf{CommonName: "widget-webhook", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true}); err != nil {
		t.Fatal(err)
	}
	port := e2eutil.FreePort(t)

	ctrl.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(srv.RESTConfig(), ctrl.Options{
		Scheme:                  scheme,
		Logger:                  logr.Discard(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        "widget-operator",
		LeaderElectionNamespace: "default",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: "127.0.0.1", Port: port, CertDir: certDir, CertName: "tls.crt", KeyName: "tls.key",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	mgr.GetWebhookServer().Register("/mutate-widget", &webhook.Admission{Handler: admission.HandlerFunc(mutateWidget)})
	mgr.GetWebhookServer().Register("/validate-widget", &webhook.Admission{Handler: admission.HandlerFunc(validateWidget)})
	owner := &unstructured.Unstructured{}
	owner.SetGroupVersionKind(widgetGVK)
	r := &widgetReconciler{c: mgr.GetClient(), scheme: scheme}
	if err := ctrl.NewControllerManagedBy(mgr).Named("widget").For(owner).Owns(&corev1.ConfigMap{}).Complete(r); err != nil {
		t.Fatal(err)
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	waitFor(t, 30*time.Second, "the webhook server", func() bool { return mgr.GetWebhookServer().StartedChecker()(nil) == nil })

	client := srv.Client()
	url := "https://127.0.0.1:" + strconv.Itoa(port)
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.skiff.dev"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
	}}
	none := admissionregistrationv1.SideEffectClassNone
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.skiff.dev"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "default.widgets.example.skiff.dev", Rules: rules, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(url + "/mutate-widget"), CABundle: ca.PEM},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.skiff.dev"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.widgets.example.skiff.dev", Rules: rules, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(url + "/validate-widget"), CABundle: ca.PEM},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	apply := func(name, spec string) e2eutil.Result {
		p := filepath.Join(dir, name+".yaml")
		doc := "apiVersion: example.skiff.dev/v1\nkind: Widget\nmetadata:\n  name: " + name + "\n  namespace: default\nspec:\n" + spec
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return k.Run(t, srv.Kubeconfig, "", "apply", "-f", p)
	}
	// Webhook configurations take effect within a moment; apply until the
	// mutating one has seen the object.
	waitFor(t, 30*time.Second, "a Widget defaulted by the mutating webhook", func() bool {
		if r := apply("gear", "  color: blue\n"); r.Code != 0 {
			t.Fatalf("kubectl apply: %s", r.Stderr)
		}
		w := getWidget(t, ctx, mgr.GetAPIReader(), "gear")
		return w != nil && w.GetLabels()["example.skiff.dev/defaulted"] == "true"
	})
	w := getWidget(t, ctx, mgr.GetAPIReader(), "gear")
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 1 {
		t.Errorf("the mutating webhook set spec.size %d, want the default 1", size)
	}
	waitReady(t, ctx, mgr.GetAPIReader(), "gear", 1, "1")

	r2 := apply("big", "  size: 20\n")
	if r2.Code == 0 || !strings.Contains(r2.Stderr, `admission webhook "validate.widgets.example.skiff.dev" denied the request: spec.size 20 is over the limit of 10`) {
		t.Errorf("kubectl apply of size 20: exit %d\n%s", r2.Code, r2.Stderr)
	}

	if r := apply("gear", "  color: blue\n  size: 5\n"); r.Code != 0 {
		t.Fatalf("kubectl apply: %s", r.Stderr)
	}
	waitReady(t, ctx, mgr.GetAPIReader(), "gear", 2, "5")

	if r := k.Run(t, srv.Kubeconfig, "", "delete", "widget", "gear", "-n", "default", "--wait=true", "--timeout=60s"); r.Code != 0 {
		t.Fatalf("kubectl delete: %s", r.Stderr)
	}
	if w := getWidget(t, ctx, mgr.GetAPIReader(), "gear"); w != nil {
		t.Fatalf("the Widget is still there: finalizers %v", w.GetFinalizers())
	}
	if cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, "gear-farewell", metav1.GetOptions{}); err != nil || cm.Data["size"] != "5" {
		t.Errorf("the finalizer's farewell: %v %v", cm, err)
	}
	waitFor(t, time.Minute, "the owned ConfigMap garbage-collected", func() bool {
		_, err := client.CoreV1().ConfigMaps("default").Get(ctx, "gear-data", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	obj := func(props map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.skiff.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.skiff.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: ptr.To(obj(map[string]apiextensionsv1.JSONSchemaProps{
					"spec": obj(map[string]apiextensionsv1.JSONSchemaProps{
						"size":  {Type: "integer", Minimum: ptr.To(0.0)},
						"color": {Type: "string"},
					}),
					"status": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
				}))},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Size", Type: "integer", JSONPath: ".spec.size"},
					{Name: "Ready", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].status`},
				},
			}},
		},
	}
}

func mutateWidget(_ context.Context, req admission.Request) admission.Response {
	// UnmarshalJSON keeps integers int64 (plain json.Unmarshal would
	// give float64, which NestedInt64 does not read).
	var w unstructured.Unstructured
	if err := w.UnmarshalJSON(req.Object.Raw); err != nil {
		return admission.Errored(400, err)
	}
	if _, found, _ := unstructured.NestedInt64(w.Object, "spec", "size"); !found {
		_ = unstructured.SetNestedField(w.Object, int64(1), "spec", "size")
	}
	labels := w.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["example.skiff.dev/defaulted"] = "true"
	w.SetLabels(labels)
	mutated, err := json.Marshal(w.Object)
	if err != nil {
		return admission.Errored(500, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, mutated)
}

func validateWidget(_ context.Context, req admission.Request) admission.Response {
	var w unstructured.Unstructured
	if err := w.UnmarshalJSON(req.Object.Raw); err != nil {
		return admission.Errored(400, err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size > 10 {
		return admission.Denied(fmt.Sprintf("spec.size %d is over the limit of 10", size))
	}
	return admission.Allowed("")
}

// widgetReconciler keeps a ConfigMap NAME-data with the Widget's size and
// a Ready condition; its finalizer leaves NAME-farewell behind.
type widgetReconciler struct {
	c      client.Client
	scheme *runtime.Scheme
}

func (r *widgetReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(widgetGVK)
	if err := r.c.Get(ctx, req.NamespacedName, w); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size")
	if w.GetDeletionTimestamp() != nil {
		if !controllerutil.ContainsFinalizer(w, widgetFinalizer) {
			return reconcile.Result{}, nil
		}
		farewell := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.GetName() + "-farewell", Namespace: w.GetNamespace()}, Data: map[string]string{"size": fmt.Sprint(size)}}
		if err := r.c.Create(ctx, farewell); err != nil && !apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, err
		}
		controllerutil.RemoveFinalizer(w, widgetFinalizer)
		return reconcile.Result{}, r.c.Update(ctx, w)
	}
	if controllerutil.AddFinalizer(w, widgetFinalizer) {
		if err := r.c.Update(ctx, w); err != nil {
			return reconcile.Result{}, err
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.GetName() + "-data", Namespace: w.GetNamespace()}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.c, cm, func() error {
		cm.Data = map[string]string{"size": fmt.Sprint(size)}
		return controllerutil.SetControllerReference(w, cm, r.scheme)
	}); err != nil {
		return reconcile.Result{}, err
	}
	var conds []metav1.Condition
	if raw, found, _ := unstructured.NestedSlice(w.Object, "status", "conditions"); found {
		for _, c := range raw {
			var cond metav1.Condition
			if m, ok := c.(map[string]any); ok && runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cond) == nil {
				conds = append(conds, cond)
			}
		}
	}
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type: "Ready", Status: metav1.ConditionTrue, Reason: "ConfigMapUpToDate",
		Message: "ConfigMap " + cm.Name + " holds size " + fmt.Sprint(size), ObservedGeneration: w.GetGeneration(),
	})
	var out []any
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			return reconcile.Result{}, err
		}
		out = append(out, m)
	}
	if err := unstructured.SetNestedSlice(w.Object, out, "status", "conditions"); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.c.Status().Update(ctx, w)
}

func getWidget(t *testing.T, ctx context.Context, c client.Reader, name string) *unstructured.Unstructured {
	t.Helper()
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(widgetGVK)
	err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, w)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get Widget %s: %v", name, err)
	}
	return w
}

// waitReady waits for the Widget's Ready condition at generation and its
// ConfigMap holding size.
func waitReady(t *testing.T, ctx context.Context, c client.Reader, name string, generation int64, size string) {
	t.Helper()
	waitFor(t, time.Minute, fmt.Sprintf("Widget %s Ready at generation %d", name, generation), func() bool {
		w := getWidget(t, ctx, c, name)
		if w == nil || !controllerutil.ContainsFinalizer(w, widgetFinalizer) {
			return false
		}
		raw, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
		for _, x := range raw {
			m, _ := x.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" && fmt.Sprint(m["observedGeneration"]) == fmt.Sprint(generation) {
				cm := &corev1.ConfigMap{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name + "-data"}, cm); err != nil {
					return false
				}
				return cm.Data["size"] == size && len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].UID == w.GetUID()
			}
		}
		return false
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
