package benchkit

import (
	"bytes"
	"context"
	"net"
	"strings"
	"time"

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
