package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RestConfig loads an admin kubeconfig with client-side rate limiting
// lifted (QPS < 0 installs no limiter) and protobuf on the wire, as
// Kubernetes' own components talk to the API server.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.UserAgent = "skiff-bench"
	return cfg, nil
}

// Clientset is a typed client on its own HTTP/2 connection: a dial
// function of its own keeps client-go from sharing its cached transport.
func Clientset(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.Dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return kubernetes.NewForConfig(c)
}

// Samples are the lines of a Prometheus text exposition, by series
// (name with its labels, as printed).
type Samples map[string]float64

// Scrape reads the API server's /metrics.
func Scrape(ctx context.Context, c rest.Interface) (Samples, error) {
	body, err := c.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	return ParseSamples(bytes.NewReader(body))
}

// Sum adds the series of metric name whose labels contain every one of
// labels (`resource="pods"`).
func (s Samples) Sum(name string, labels ...string) float64 {
	var total float64
next:
	for series, v := range s {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || rest != "" && rest[0] != '{' {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue next
			}
		}
		total += v
	}
	return total
}

// CreateNamespace creates namespace name and waits (up to 60 s) for its
// default ServiceAccount, without which admission refuses pods.
func CreateNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	for range 600 {
		if _, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		if !Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("namespace %s: no default ServiceAccount after 60s", name)
}

// Sleep waits d or until ctx ends, and says which (true: d passed).
func Sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// SaveHeapProfile saves the API server process's heap profile into dir,
// named after what, saying where (the server needs
// --kube-apiserver-arg=profiling=true; without it, says so).
func SaveHeapProfile(ctx context.Context, cs kubernetes.Interface, dir, what string) {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/heap").DoRaw(ctx)
	if err != nil {
		fmt.Println("  (no heap profile; is profiling on?", err, ")")
		return
	}
	name := strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "", ":", "").Replace(what) + ".pb.gz"
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Println("  (no heap profile:", err, ")")
		return
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		fmt.Println("  (no heap profile:", err, ")")
		return
	}
	fmt.Println("  heap profile:", path)
}
