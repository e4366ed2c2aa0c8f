package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// manyRoutes starts skiff's proxy holding b.opts.routes Ingresses, sends a
// few requests to some of their hosts, and returns its memory after them.
func (b *bench) manyRoutes(ctx context.Context, upstreams []string) (benchkit.Memory, error) {
	n := b.opts.routes
	httpPort, httpsPort, err := twoPorts()
	if err != nil {
		return benchkit.Memory{}, err
	}
	argv := []string{b.self, "-mode", "skiff-proxy",
		"-listen", hostPort(httpPort) + "," + hostPort(httpsPort),
		"-upstreams", strings.Join(upstreams, ","),
		"-cert", b.cert.cert, "-key", b.cert.key,
		"-child-routes", strconv.Itoa(n),
	}
	pr, err := startProc("skiff-routes", argv, nil, filepath.Join(b.root, "skiff-routes.log"))
	if err != nil {
		return benchkit.Memory{}, err
	}
	defer pr.stop()
	url := fmt.Sprintf("http://%s/", hostPort(httpPort))
	if err := waitServing(ctx, pr, url, routeHost(1), backendBody); err != nil {
		return benchkit.Memory{}, err
	}
	idle, err := benchkit.ProcessMemory(pr.pid())
	if err != nil {
		return benchkit.Memory{}, err
	}
	// Four requests each to 50 hosts spread over the routes, on one
	// keep-alive connection.
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	hosts, requests := min(50, n), 0
	for i := range hosts {
		host := routeHost(1 + i*n/hosts)
		for range 4 {
			body, status, err := get(ctx, hc, url, host)
			if err != nil {
				return benchkit.Memory{}, fmt.Errorf("GET %s: %w", host, err)
			}
			if status != http.StatusOK || string(body) != string(backendBody) {
				return benchkit.Memory{}, fmt.Errorf("GET %s: %d %q", host, status, body)
			}
			requests++
		}
	}
	if !benchkit.Sleep(ctx, time.Second) {
		return benchkit.Memory{}, ctx.Err()
	}
	m, err := benchkit.ProcessMemory(pr.pid())
	if err != nil {
		return benchkit.Memory{}, err
	}
	fmt.Printf("  %d Ingresses, Services and EndpointSlices (one endpoint each, no TLS), objects kept in memory as informer caches would\n", n)
	fmt.Printf("  RSS after start: %s\n", idle)
	fmt.Printf("  RSS after %d requests to %d hosts: %s\n", requests, hosts, m)
	fmt.Printf("  (file-backed pages are mostly this program's executable, %s; in skiff they are the skiff binary's, shared with the rest of the process)\n", exeSize(b.self))
	return m, nil
}

// exeSize is the size of the file at path, in MB.
func exeSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "size unknown"
	}
	return fmt.Sprintf("%.0f MB", float64(fi.Size())/1e6)
}
