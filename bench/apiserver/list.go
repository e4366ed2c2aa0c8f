package main

import (
	"context"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const manyNS = "bench-many"

// manyPods fills one namespace with plan.manyPods pods, reads the server's
// memory holding them, and times LISTs of them.
func (b *bench) manyPods(ctx context.Context, s *benchkit.Server, cfg *rest.Config, admin *kubernetes.Clientset) error {
	n := b.plan.manyPods
	fmt.Printf("== %d pods in one namespace\n", n)
	if err := namespace(ctx, admin, manyNS); err != nil {
		return err
	}
	clients, err := clientsets(cfg, 50)
	if err != nil {
		return err
	}
	create := runOps(ctx, clients, n, 10*time.Minute, func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(manyNS).Create(ctx, pod(fmt.Sprintf("m-%05d", i), "many"), metav1.CreateOptions{})
		return err
	})
	closeClients(clients)
	b.report.Add(fmt.Sprintf("create %d pods, 50 clients", n), create.String())
	if create.errs > 0 {
		return fmt.Errorf("creating %d pods: %v", n, create.firstErr)
	}
	select {
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	m, err := s.Memory()
	if err != nil {
		return err
	}
	b.report.Add(fmt.Sprintf("server RSS holding %d pods (10 s after the last create)", n), m.String())
	b.goMemory(ctx, s, fmt.Sprintf("holding %d pods", n))
	return b.lists(ctx, s, admin, n)
}

// listVariant is one way of listing the namespace.
type listVariant struct {
	name string
	opts metav1.ListOptions
	// target: the "LIST of 10,000 pods from the cache" applies.
	target bool
}

func (b *bench) lists(ctx context.Context, s *benchkit.Server, admin *kubernetes.Clientset, n int) error {
	variants := []listVariant{
		{name: "resourceVersion=0 (any version the watch cache has)", opts: metav1.ListOptions{ResourceVersion: "0"}, target: true},
		{name: "no resourceVersion (consistent: etcd revision check, then the watch cache)", opts: metav1.ListOptions{}, target: true},
	}
	for _, v := range variants {
		before := b.scrape(ctx, admin)
		wire, size, err := b.timeWireList(ctx, admin, v.opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", v.name, err)
		}
		typed, err := b.timeTypedList(ctx, admin, v.opts, n)
		if err != nil {
			return fmt.Errorf("list %s: %w", v.name, err)
		}
		after := b.scrape(ctx, admin)
		target, ok := "", ""
		if v.target {
			target, ok = "< 150 ms", benchkit.Verdict(wire.P99 < 150*time.Millisecond)
		}
		b.report.AddTarget(fmt.Sprintf("LIST %d pods, %s, response read", n, v.name),
			fmt.Sprintf("p50 %s, p99 %s (%d lists, %.1f MB protobuf)", benchkit.Ms(wire.P50), benchkit.Ms(wire.P99), wire.N, float64(size)/1e6),
			target, ok)
		b.report.Add(fmt.Sprintf("LIST %d pods, %s, decoded by client-go", n, v.name),
			fmt.Sprintf("p50 %s, p99 %s", benchkit.Ms(typed.P50), benchkit.Ms(typed.P99)))
		b.report.Add("  where those LISTs were served", servedFrom(before, after))
	}
	for _, rv := range []string{"", "0"} {
		name := fmt.Sprintf("limit=%d pages, no resourceVersion", b.plan.pageSize)
		if rv != "" {
			name = fmt.Sprintf("limit=%d pages, resourceVersion=0", b.plan.pageSize)
		}
		before := b.scrape(ctx, admin)
		whole, page, pages, err := b.timePagedList(ctx, admin, rv, n)
		if err != nil {
			return fmt.Errorf("list %s: %w", name, err)
		}
		after := b.scrape(ctx, admin)
		b.report.Add(fmt.Sprintf("LIST %d pods, %s, decoded, all pages", n, name),
			fmt.Sprintf("p50 %s, p99 %s (%d pages each; one page p50 %s, p99 %s)",
				benchkit.Ms(whole.P50), benchkit.Ms(whole.P99), pages, benchkit.Ms(page.P50), benchkit.Ms(page.P99)))
		b.report.Add("  where those LISTs were served", servedFrom(before, after))
	}
	return nil
}

// timeWireList times LISTs to the last byte of the response, read and
// thrown away: the server's work plus the transfer, not the decoding.
func (b *bench) timeWireList(ctx context.Context, c *kubernetes.Clientset, opts metav1.ListOptions) (benchkit.Summary, int64, error) {
	var lat []time.Duration
	var size int64
	for i := range b.plan.lists + 1 {
		req := c.CoreV1().RESTClient().Get().Namespace(manyNS).Resource("pods")
		if opts.ResourceVersion != "" {
			req = req.Param("resourceVersion", opts.ResourceVersion)
		}
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		body, err := req.Stream(lctx)
		if err == nil {
			size, err = io.Copy(io.Discard, body)
			body.Close()
		}
		d := time.Since(t0)
		cancel()
		if err != nil {
			return benchkit.Summary{}, 0, err
		}
		if i > 0 { // the first warms up
			lat = append(lat, d)
		}
	}
	return benchkit.Summarize(lat), size, nil
}

// timeTypedList times LISTs through the typed client, decoding included.
func (b *bench) timeTypedList(ctx context.Context, c *kubernetes.Clientset, opts metav1.ListOptions, n int) (benchkit.Summary, error) {
	var lat []time.Duration
	for i := range b.plan.lists + 1 {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		l, err := c.CoreV1().Pods(manyNS).List(lctx, opts)
		d := time.Since(t0)
		cancel()
		if err != nil {
			return benchkit.Summary{}, err
		}
		if len(l.Items) != n {
			return benchkit.Summary{}, fmt.Errorf("got %d pods, want %d", len(l.Items), n)
		}
		if i > 0 {
			lat = append(lat, d)
		}
	}
	return benchkit.Summarize(lat), nil
}

// timePagedList times walking the whole namespace in pages of
// plan.pageSize, following continue tokens, and each page.
func (b *bench) timePagedList(ctx context.Context, c *kubernetes.Clientset, rv string, n int) (whole, page benchkit.Summary, pages int, err error) {
	var wholeLat, pageLat []time.Duration
	for i := range b.plan.lists + 1 {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		items, cont := 0, ""
		pages = 0
		for pages < 1000 { // bounded: n/pageSize pages are expected
			p0 := time.Now()
			opts := metav1.ListOptions{Limit: b.plan.pageSize, Continue: cont}
			if cont == "" {
				opts.ResourceVersion = rv
			}
			l, lerr := c.CoreV1().Pods(manyNS).List(lctx, opts)
			if lerr != nil {
				cancel()
				return whole, page, pages, lerr
			}
			if i > 0 {
				pageLat = append(pageLat, time.Since(p0))
			}
			items += len(l.Items)
			pages++
			if cont = l.Continue; cont == "" {
				break
			}
		}
		d := time.Since(t0)
		cancel()
		if items != n {
			return whole, page, pages, fmt.Errorf("got %d pods in %d pages, want %d", items, pages, n)
		}
		if i > 0 {
			wholeLat = append(wholeLat, d)
		}
	}
	return benchkit.Summarize(wholeLat), benchkit.Summarize(pageLat), pages, nil
}

func (b *bench) scrape(ctx context.Context, c *kubernetes.Clientset) benchkit.Samples {
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := benchkit.Scrape(mctx, c.CoreV1().RESTClient())
	if err != nil {
		return nil
	}
	return m
}

// servedFrom tells, from the API server's counters, how many pod LISTs the
// watch cache served and how many went to etcd between two scrapes.
func servedFrom(before, after benchkit.Samples) string {
	if before == nil || after == nil {
		return "unknown (no /metrics)"
	}
	delta := func(name string, labels ...string) int {
		return int(after.Sum(name, labels...) - before.Sum(name, labels...))
	}
	return fmt.Sprintf("watch cache %d, etcd LISTs of pods %d, etcd revision checks %d, consistent reads from cache %d",
		delta("apiserver_cache_list_total", `resource="pods"`),
		delta("etcd_requests_total", `resource="pods"`, `operation="list`),
		delta("etcd_requests_total", `resource="pods"`, `operation="getCurrentResourceVersion"`),
		delta("apiserver_watch_cache_consistent_read_total", `resource="pods"`, `fallback="false"`))
}
