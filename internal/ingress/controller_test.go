package ingress

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNewChecksConfig(t *testing.T) {
	client := fake.NewClientset()
	valid := func() Config {
		return Config{NodeName: "n1", Client: client, HTTPAddr: ":80", HTTPSAddr: ":443"}
	}
	tests := []struct {
		name   string
		change func(*Config)
		field  string // named in the error; "" for no error
	}{
		{"valid", func(*Config) {}, ""},
		{"no node name", func(c *Config) { c.NodeName = "" }, "NodeName"},
		{"no client", func(c *Config) { c.Client = nil }, "Client"},
		{"no HTTP address", func(c *Config) { c.HTTPAddr = "" }, "HTTPAddr"},
		{"no HTTPS address", func(c *Config) { c.HTTPSAddr = "" }, "HTTPSAddr"},
		{"bad HTTPS address", func(c *Config) { c.HTTPSAddr = "443" }, "HTTPSAddr"},
		{"status without addresses", func(c *Config) { c.WriteStatus = true }, "Addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			_, err := New(cfg)
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Errorf("New: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

// TestControllerRun runs the controller against a fake clientset: it
// serves an Ingress, publishes the node address in its status, reports a
// missing Service as an Event, and returns once its context ends.
func TestControllerRun(t *testing.T) {
	ep := upstream(t, "web", nil)
	objs := []runtime.Object{
		makeClass(ClassName, false),
		makeIngress("ns", "web").path("foo.com", "/", prefix, "web", 80).path("foo.com", "/gone", prefix, "gone", 80).obj(),
		makeIngress("ns", "other").class("nginx").path("foo.com", "/", prefix, "web", 80).obj(),
		makeService("ns", "web").port("http", 80).obj(),
		sliceFor("ns", "web", ep),
	}
	client := fake.NewClientset(objs...)
	c, err := New(Config{
		NodeName: "n1", Client: client,
		HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		Addresses:      func() []string { return []string{"192.0.2.7", "node-1.example", "192.0.2.7"} },
		PublishService: types.NamespacedName{Namespace: "kube-system", Name: "skiff-ingress"},
		WriteStatus:    true,
		Log:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
		if h, s := c.Addrs(); h != nil || s != nil {
			t.Errorf("addresses %v %v after Run returned", h, s)
		}
	}()

	eventually(t, "serving", func() bool { h, _ := c.Addrs(); return h != nil })
	httpAddr, _ := c.Addrs()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr.String()+"/hello", nil)
	req.Host = "foo.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "web /hello" {
		t.Errorf("GET foo.com/hello: %d %q", resp.StatusCode, body)
	}

	eventually(t, "status update", func() bool {
		ing, err := client.NetworkingV1().Ingresses("ns").Get(ctx, "web", metav1.GetOptions{})
		lb := ing.Status.LoadBalancer.Ingress
		return err == nil && len(lb) == 1 && lb[0].IP == "192.0.2.7"
	})
	// The publish Service gets its EXTERNAL-IPs: they replace Addresses'.
	pub := makeService("kube-system", "skiff-ingress").port("http", 80).obj()
	pub.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.2"}, {IP: "198.51.100.1"}}
	if _, err := client.CoreV1().Services("kube-system").Create(ctx, pub, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status from the publish Service", func() bool {
		ing, err := client.NetworkingV1().Ingresses("ns").Get(ctx, "web", metav1.GetOptions{})
		lb := ing.Status.LoadBalancer.Ingress
		return err == nil && len(lb) == 2 && lb[0].IP == "198.51.100.1" && lb[1].IP == "198.51.100.2"
	})
	other, err := client.NetworkingV1().Ingresses("ns").Get(ctx, "other", metav1.GetOptions{})
	if err != nil || len(other.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("the nginx Ingress got status %v (%v)", other.Status.LoadBalancer.Ingress, err)
	}
	eventually(t, "BackendNotFound event", func() bool {
		evs, err := client.EventsV1().Events("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == ReasonBackendNotFound && e.Regarding.Name == "web" && strings.Contains(e.Note, "service ns/gone not found") {
				return true
			}
		}
		return false
	})
}
