package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const (
	metricsURL  = "http://127.0.0.1:10249/metrics"
	svcNS       = "bench-svc"
	createConns = 20 // concurrent API clients creating Services and slices
)

// The kube-proxy histograms read, by short name.
var syncMetrics = []struct{ short, name, unit string }{
	{"any sync", "kubeproxy_sync_proxy_rules_duration_seconds", "syncs"},
	{"full sync", "kubeproxy_sync_full_proxy_rules_duration_seconds", "syncs"},
	{"partial sync", "kubeproxy_sync_partial_proxy_rules_duration_seconds", "syncs"},
	// One observation per changed EndpointSlice carrying the trigger-time annotation.
	{"network programming (slice trigger time → programmed)", "kubeproxy_network_programming_duration_seconds", "slices"},
}

// dataplane creates selector-less Services with hand-made EndpointSlices up
// to each count of o.services and reads what kube-proxy reports.
func dataplane(ctx context.Context, c *cluster, o options, report *benchkit.Report) error {
	fmt.Println("\n## dataplane: kube-proxy (nftables) sync time")
	if err := benchkit.CreateNamespace(ctx, c.client, svcNS); err != nil {
		return err
	}
	if _, err := waitMetrics(ctx); err != nil {
		return err
	}
	have := 0
	for _, n := range o.services {
		before, err := waitMetrics(ctx)
		if err != nil {
			return err
		}
		load := benchkit.StartLoadSampler(ctx, 5*time.Second)
		start := time.Now()
		last, err := createServices(ctx, c, have, n, o.endpoints)
		if err != nil {
			return err
		}
		created := time.Since(start)
		toNft, listTime, err := waitInNft(ctx, last, 5*time.Minute)
		if err != nil {
			return err
		}
		prev := have
		have = n
		quiet(ctx)
		after, err := waitMetrics(ctx)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("%d Services × %d endpoints", n, o.endpoints)
		report.Add(label+": created (API)", fmt.Sprintf("%d Services + slices in %s (%.0f/s), %d clients",
			n-prev, created.Round(time.Millisecond), float64(n-prev)/created.Seconds(), createConns))
		report.Add(label+": last Service created → ClusterIP in nft", fmt.Sprintf("%s (one `nft list map` of service-ips takes %s)",
			benchkit.Ms(toNft), benchkit.Ms(listTime)))
		for _, m := range syncMetrics {
			report.Add(label+": during creation, "+m.short, describe(after.Histogram(m.name).Since(before.Histogram(m.name)), m.unit))
		}
		// One more Service at rest: the incremental cost at this size.
		probe, took, err := probeService(ctx, c, n, o.endpoints)
		if err != nil {
			return err
		}
		report.Add(label+": one more Service at rest → in nft", fmt.Sprintf("%s (%s)", benchkit.Ms(took), probe))
		quiet(ctx)
		final, err := waitMetrics(ctx)
		if err != nil {
			return err
		}
		report.Add(label+": that Service's partial sync", describe(final.Histogram(syncMetrics[2].name).Since(after.Histogram(syncMetrics[2].name)), "syncs"))
		fmt.Printf("  load during this step: %s\n", load.Stop())
		printNftGauges(final)

		// A full sync of everything: restart the server (and so its agent's
		// kube-proxy) and read the first sync.
		restarted, err := c.restart(ctx)
		if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		s, err := waitFullSync(ctx)
		if err != nil {
			return fmt.Errorf("after the restart: %w", err)
		}
		if _, _, err = waitInNft(ctx, probe, time.Minute); err != nil {
			return err
		}
		report.Add(label+": after restart, first full sync", describe(s.Histogram(syncMetrics[1].name), "syncs"))
		report.Add(label+": server restart → its ClusterIPs in nft", benchkit.Ms(time.Since(restarted)))
		if o.kubeProxy != "" {
			if err := anchor(ctx, c, o, report, label, probe, s.Histogram(syncMetrics[1].name)); err != nil {
				return fmt.Errorf("kube-proxy anchor: %w", err)
			}
		}
	}
	return nil
}

// anchor measures upstream kube-proxy's first full sync in the same state:
// the server restarted without its own kube-proxy (--disable-kube-proxy),
// the table the agent's kube-proxy left in place, and the kube-proxy binary
// started with the flags the agent gives its own. Then the server is
// restarted as before, so later steps find the cluster as they expect.
func anchor(ctx context.Context, c *cluster, o options, report *benchkit.Report, label, probe string, skiffFull benchkit.Histogram) error {
	if _, err := c.restart(ctx, "--disable-kube-proxy"); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(c.root, fmt.Sprintf("kube-proxy-%d.log", time.Now().Unix())))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(o.kubeProxy, "--kubeconfig", c.server.Kubeconfig(), "--hostname-override", nodeName,
		"--proxy-mode", "nftables", "--cluster-cidr", "10.42.0.0/16", "--conntrack-max-per-core", "0",
		"--healthz-bind-address", "", "--metrics-bind-address", "127.0.0.1:10249")
	cmd.Stdout, cmd.Stderr = logf, logf
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	s, err := waitFullSync(ctx)
	if err != nil {
		return fmt.Errorf("upstream kube-proxy (log %s): %w", logf.Name(), err)
	}
	if _, _, err := waitInNft(ctx, probe, time.Minute); err != nil {
		return err
	}
	full := s.Histogram(syncMetrics[1].name)
	report.Add(label+": upstream kube-proxy, first full sync", describe(full, "syncs"))
	report.Add(label+": upstream kube-proxy start → ClusterIPs in nft", benchkit.Ms(time.Since(started)))
	if full.Sum > 0 {
		report.Add(label+": first full sync, skiff / upstream kube-proxy", fmt.Sprintf("%.2f (sum of the first full syncs' durations)", skiffFull.Sum/full.Sum))
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_, err = c.restart(ctx)
	return err
}

func describe(h benchkit.Histogram, unit string) string {
	if h.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f %s, mean %.1f ms, p50 ≤ %s, max ≤ %s (bucket bounds)", h.Count, unit, 1000*h.Mean(), bound(h.Quantile(0.5)), bound(h.Quantile(1)))
}

func bound(sec float64) string {
	if sec > 1e9 {
		return "+Inf"
	}
	return fmt.Sprintf("%g ms", 1000*sec)
}

func printNftGauges(s benchkit.Samples) {
	var lines []string
	for k, v := range s {
		if strings.HasPrefix(k, "kubeproxy_sync_proxy_rules_nftables") || strings.HasPrefix(k, "kubeproxy_sync_proxy_rules_endpoint_changes_total") || strings.HasPrefix(k, "kubeproxy_sync_proxy_rules_service_changes_total") {
			lines = append(lines, fmt.Sprintf("    %s %g", k, v))
		}
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
}

// waitFullSync scrapes kube-proxy until it reports a full sync (bounded:
// 5 minutes).
func waitFullSync(ctx context.Context) (benchkit.Samples, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		s, err := benchkit.ScrapeURL(ctx, metricsURL)
		if err == nil && s.Histogram(syncMetrics[1].name).Count >= 1 {
			return s, nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return nil, fmt.Errorf("no full sync within 5m (%v)", err)
		}
	}
}

// waitMetrics scrapes kube-proxy, waiting up to 2 minutes for it to serve.
func waitMetrics(ctx context.Context) (benchkit.Samples, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := benchkit.ScrapeURL(ctx, metricsURL)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			return nil, fmt.Errorf("kube-proxy metrics at %s: %w", metricsURL, err)
		}
	}
}

// quiet waits until kube-proxy has not synced for 3 s (bounded: 2 minutes).
func quiet(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Minute)
	var last float64 = -1
	stable := time.Now()
	for time.Now().Before(deadline) {
		s, err := benchkit.ScrapeURL(ctx, metricsURL)
		if err == nil {
			if n := s.Histogram(syncMetrics[0].name).Count; n != last {
				last, stable = n, time.Now()
			} else if time.Since(stable) > 3*time.Second {
				return
			}
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

// waitInNft polls kube-proxy's service-ips map until it holds ip, and
// returns how long that took and how long the last listing took.
func waitInNft(ctx context.Context, ip string, limit time.Duration) (time.Duration, time.Duration, error) {
	start := time.Now()
	for {
		t := time.Now()
		out, err := serviceIPs(ctx)
		list := time.Since(t)
		if err == nil && strings.Contains(out, ip+" . tcp . 80 ") {
			return time.Since(start), list, nil
		}
		if time.Since(start) > limit || !sleep(ctx, 10*time.Millisecond) {
			return 0, list, fmt.Errorf("ClusterIP %s not in nft within %s (%v)", ip, limit, err)
		}
	}
}

// createServices creates Services svc-from … svc-(to-1), each with an
// EndpointSlice of n ready endpoints at fake pod IPs, and returns the
// ClusterIP of the last one created.
func createServices(ctx context.Context, c *cluster, from, to, n int) (string, error) {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex // guards the following
		firstErr error
		lastIP   string
	)
	next.Store(int64(from))
	for range createConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				ip, err := createService(ctx, c, fmt.Sprintf("svc-%05d", i), i, n)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lastIP = ip
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return lastIP, firstErr
}

func createService(ctx context.Context, c *cluster, name string, i, n int) (string, error) {
	svc, err := c.client.CoreV1().Services(svcNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create Service %s: %w", name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench-network"},
			// kube-proxy reports network programming latency from this.
			Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().UTC().Format(time.RFC3339Nano)},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for e := range n {
		// Fake pod addresses outside the node's podCIDR: 10.45.0.0/16 on.
		k := i*n + e
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 45+k/65536, k/256%256, k%256)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices(svcNS).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create EndpointSlice %s: %w", slice.Name, err)
	}
	return svc.Spec.ClusterIP, nil
}

// probeService creates one more Service and slice at rest and times it
// from the create request to its ClusterIP in nftables.
func probeService(ctx context.Context, c *cluster, i, n int) (string, time.Duration, error) {
	start := time.Now()
	ip, err := createService(ctx, c, fmt.Sprintf("probe-%05d", i), 100000+i, n)
	if err != nil {
		return "", 0, err
	}
	if _, _, err := waitInNft(ctx, ip, time.Minute); err != nil {
		return "", 0, err
	}
	return ip, time.Since(start), nil
}

// restart stops the server and starts it again on the same data directory
// and port, with extra flags; it returns when the node is Ready, with the
// start time.
func (c *cluster) restart(ctx context.Context, extra ...string) (time.Time, error) {
	if err := c.server.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
	}
	var err error
	c.server, err = benchkit.StartServer(benchkit.ServerOptions{
		Binary: c.skiff, DataDir: c.server.DataDir, Port: c.server.Port, Args: append(slices.Clone(c.args), extra...),
	})
	if err != nil {
		return time.Time{}, err
	}
	started := c.server.Started
	if _, err := c.server.WaitReady(ctx, 3*time.Minute); err != nil {
		return started, err
	}
	return started, nil
}
