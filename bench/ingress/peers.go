package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// peerSetup is what every peer's configuration is made from.
type peerSetup struct {
	dir       string   // for configurations, logs and state
	self      string   // this program, for skiff's proxy
	upstreams []string // backend addresses, host:port
	cert      certFiles
	threads   int // worker processes or threads
}

// launcher knows how to configure and start one kind of proxy.
type launcher struct {
	binary string // looked up on PATH; "" for skiff (this program)
	pkg    string // the Debian package holding it
	// version is the proxy's version, one line.
	version func() string
	// config writes the proxy's configuration for the ports and returns
	// its command line, extra environment and a note on its worker model.
	config func(s peerSetup, httpPort, httpsPort int) (argv, env []string, notes string, err error)
}

// peerNames are the proxies in the order they are started and listed.
var peerNames = []string{"skiff", "haproxy", "nginx", "caddy"}

var launchers = map[string]launcher{
	"skiff":   {version: skiffVersion, config: skiffConfig},
	"haproxy": {binary: "haproxy", pkg: "haproxy", version: func() string { return toolVersion("haproxy", "-v") }, config: haproxyConfig},
	"nginx":   {binary: "nginx", pkg: "nginx", version: func() string { return toolVersion("nginx", "-v") }, config: nginxConfig},
	"caddy":   {binary: "caddy", pkg: "caddy", version: func() string { return "Caddy " + toolVersion("caddy", "version") }, config: caddyConfig},
}

func parsePeers(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if _, ok := launchers[name]; !ok {
			return nil, fmt.Errorf("unknown peer %q (want some of %s)", name, strings.Join(peerNames, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	// Listed in a fixed order, whatever the flag's.
	slices.SortFunc(out, func(a, b string) int { return slices.Index(peerNames, a) - slices.Index(peerNames, b) })
	return out, nil
}

// checkTools fails, saying how to install it, when a program the run needs
// is missing.
func checkTools(o options) error {
	need := map[string]string{} // binary → package
	for _, name := range o.peers {
		if l := launchers[name]; l.binary != "" {
			need[l.binary] = l.pkg
		}
	}
	for _, sc := range o.scenarios {
		if sc.h2 {
			need["h2load"] = "nghttp2-client"
		} else {
			need["wrk"] = "wrk"
		}
	}
	var missing []string
	for bin, pkg := range need {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s not found: run `make bench-ingress-deps` or apt-get install %s", bin, pkg))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		return fmt.Errorf("%s", strings.Join(missing, "; "))
	}
	return nil
}

// peer is a proxy started and checked.
type peer struct {
	name    string
	version string
	notes   string // worker model
	check   string // what the start-up check saw
	proc    *proc

	httpPort, httpsPort int
	idleRSS             int64 // after start, before any load
}

func (p *peer) stop() { p.proc.stop() }

func (p *peer) rss() int64 {
	rss, err := benchkit.TreeRSS(p.proc.pid())
	if err != nil {
		return -1
	}
	return rss
}

// startPeer configures and starts proxy name on two free ports, waits for
// it to serve bench.local over HTTP and HTTPS, and checks that it speaks h2
// over TLS and balances over every backend.
func startPeer(ctx context.Context, name string, s peerSetup) (*peer, error) {
	l := launchers[name]
	httpPort, httpsPort, err := twoPorts()
	if err != nil {
		return nil, err
	}
	argv, env, notes, err := l.config(s, httpPort, httpsPort)
	if err != nil {
		return nil, fmt.Errorf("%s configuration: %w", name, err)
	}
	pr, err := startProc(name, argv, env, filepath.Join(s.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p := &peer{name: name, version: l.version(), notes: notes, proc: pr, httpPort: httpPort, httpsPort: httpsPort}
	for _, url := range []string{p.url(false), p.url(true)} {
		if err := waitServing(ctx, pr, url, benchHost, backendBody); err != nil {
			pr.stop()
			return nil, err
		}
	}
	if p.check, err = inspect(ctx, p, len(s.upstreams)); err != nil {
		pr.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Let the workers settle before the idle reading.
	time.Sleep(500 * time.Millisecond)
	p.idleRSS = p.rss()
	return p, nil
}

// url is the peer's address, https or http, with path /.
func (p *peer) url(secure bool) string {
	if secure {
		return fmt.Sprintf("https://127.0.0.1:%d/", p.httpsPort)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", p.httpPort)
}

// inspect checks that p negotiates h2 by ALPN over TLS, that requests on
// one keep-alive connection reach every one of backends and that another
// host gets 404, and says what TLS it negotiated.
func inspect(ctx context.Context, p *peer, backends int) (string, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: benchHost, InsecureSkipVerify: true}, // our own self-signed certificate
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url(true), nil)
	if err != nil {
		return "", err
	}
	req.Host = benchHost
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return "", fmt.Errorf("answers %s over TLS, not HTTP/2: ALPN h2 is not negotiated", resp.Proto)
	}
	tlsInfo := fmt.Sprintf("%s %s, ALPN %s", tls.VersionName(resp.TLS.Version), tls.CipherSuiteName(resp.TLS.CipherSuite), resp.TLS.NegotiatedProtocol)

	seen := map[string]bool{}
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer plain.CloseIdleConnections()
	for range 4 * backends {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url(false), nil)
		if err != nil {
			return "", err
		}
		req.Host = benchHost
		resp, err := plain.Do(req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		seen[resp.Header.Get("X-Backend")] = true
	}
	if len(seen) < backends {
		return "", fmt.Errorf("%d requests reached %d of the %d backends: not balancing over all of them", 4*backends, len(seen), backends)
	}
	// Every peer routes bench.local only.
	if _, status, err := get(ctx, plain, p.url(false), "other.invalid"); err != nil || status != http.StatusNotFound {
		return "", fmt.Errorf("host other.invalid: want 404, got %d (%v)", status, err)
	}
	return fmt.Sprintf("%s; reaches %d/%d backends", tlsInfo, len(seen), backends), nil
}

// twoPorts picks two different free ports.
func twoPorts() (int, int, error) {
	a, err := benchkit.FreePort()
	if err != nil {
		return 0, 0, err
	}
	for range 10 {
		b, err := benchkit.FreePort()
		if err != nil {
			return 0, 0, err
		}
		if b != a {
			return a, b, nil
		}
	}
	return 0, 0, fmt.Errorf("no second free port")
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// skiff: this program as a child, serving with internal/ingress.

func skiffVersion() string {
	return "internal/ingress, built into this program"
}

func skiffConfig(s peerSetup, httpPort, httpsPort int) ([]string, []string, string, error) {
	argv := []string{s.self, "-mode", "skiff-proxy",
		"-listen", hostPort(httpPort) + "," + hostPort(httpsPort),
		"-upstreams", strings.Join(s.upstreams, ","),
		"-cert", s.cert.cert, "-key", s.cert.key,
		"-child-routes", "1",
	}
	return argv, nil, fmt.Sprintf("one process, GOMAXPROCS %d (default), access log off (its default)", s.threads), nil
}

// HAProxy: one process, nbthread threads.

var haproxyTemplate = template.Must(template.New("haproxy").Parse(`# bench/ingress: Host bench.local → round robin over the backends.
global
    nbthread {{.Threads}}
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 90s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 90s

frontend bench
    bind 127.0.0.1:{{.HTTP}}
    bind 127.0.0.1:{{.HTTPS}} ssl crt {{.PEM}} alpn h2,http/1.1
    acl bench req.hdr(host),field(1,:),lower -m str bench.local
    http-request deny deny_status 404 unless bench
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http unless { ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend echo

backend echo
    balance roundrobin
{{- range $i, $u := .Upstreams}}
    server b{{$i}} {{$u}}
{{- end}}
`))

func haproxyConfig(s peerSetup, httpPort, httpsPort int) ([]string, []string, string, error) {
	path := filepath.Join(s.dir, "haproxy.cfg")
	if err := writeTemplate(path, haproxyTemplate, map[string]any{
		"Threads": s.threads, "HTTP": httpPort, "HTTPS": httpsPort, "PEM": s.cert.pem, "Upstreams": s.upstreams,
	}); err != nil {
		return nil, nil, "", err
	}
	// -db: stay in the foreground.
	return []string{"haproxy", "-db", "-f", path}, nil, fmt.Sprintf("one process, nbthread %d, no log", s.threads), nil
}

// NGINX: a master and worker_processes auto.

var nginxTemplate = template.Must(template.New("nginx").Parse(`# bench/ingress: Host bench.local → round robin over the backends.
worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path {{.Dir}}/nginx-temp/body;
    proxy_temp_path {{.Dir}}/nginx-temp/proxy;
    fastcgi_temp_path {{.Dir}}/nginx-temp/fastcgi;
    uwsgi_temp_path {{.Dir}}/nginx-temp/uwsgi;
    scgi_temp_path {{.Dir}}/nginx-temp/scgi;

    # Clients keep their connections as long as with skiff (no limit on
    # requests per connection; NGINX's default closes after 1,000).
    keepalive_timeout 90s;
    keepalive_requests 1000000;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {{.Cert}};
    ssl_certificate_key {{.Key}};

    upstream echo {
{{- range .Upstreams}}
        server {{.}};
{{- end}}
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }

    # Any other host: 404, as skiff answers.
    server {
        listen 127.0.0.1:{{.HTTP}} default_server reuseport;
        listen 127.0.0.1:{{.HTTPS}} ssl http2 default_server reuseport;
        return 404;
    }

    server {
        listen 127.0.0.1:{{.HTTP}};
        listen 127.0.0.1:{{.HTTPS}} ssl http2;
        server_name bench.local;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }
    }
}
`))

func nginxConfig(s peerSetup, httpPort, httpsPort int) ([]string, []string, string, error) {
	// NGINX creates the temporary directories' last element only.
	if err := os.MkdirAll(filepath.Join(s.dir, "nginx-temp"), 0o755); err != nil {
		return nil, nil, "", err
	}
	path := filepath.Join(s.dir, "nginx.conf")
	if err := writeTemplate(path, nginxTemplate, map[string]any{
		"Dir": s.dir, "HTTP": httpPort, "HTTPS": httpsPort, "Cert": s.cert.cert, "Key": s.cert.key, "Upstreams": s.upstreams,
	}); err != nil {
		return nil, nil, "", err
	}
	argv := []string{"nginx", "-p", s.dir, "-e", filepath.Join(s.dir, "nginx-error.log"), "-c", path, "-g", "daemon off;"}
	return argv, nil, fmt.Sprintf("master + worker_processes auto (%d), reuseport, access_log off", s.threads), nil
}

// Caddy: one process; JSON configuration, so that the TLS policy can serve
// the certificate whatever the SNI (wrk sends 127.0.0.1).

func caddyConfig(s peerSetup, httpPort, httpsPort int) ([]string, []string, string, error) {
	var upstreams []map[string]any
	for _, u := range s.upstreams {
		upstreams = append(upstreams, map[string]any{"dial": u})
	}
	routes := []any{
		map[string]any{
			"match": []any{map[string]any{"host": []string{benchHost}}},
			"handle": []any{map[string]any{
				"handler":        "reverse_proxy",
				"upstreams":      upstreams,
				"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": "round_robin"}},
				// As many idle connections per backend as skiff keeps.
				"transport": map[string]any{"protocol": "http", "keep_alive": map[string]any{"max_idle_conns_per_host": 64}},
			}},
			"terminal": true,
		},
		// Any other host: 404, as skiff answers (Caddy's default is an empty 200).
		map[string]any{"handle": []any{map[string]any{"handler": "static_response", "status_code": 404}}},
	}
	server := func(port int, secure bool) map[string]any {
		srv := map[string]any{
			"listen":          []string{hostPort(port)},
			"routes":          routes,
			"automatic_https": map[string]any{"disable": true},
			"protocols":       []string{"h1", "h2"},
		}
		if secure {
			srv["tls_connection_policies"] = []any{map[string]any{
				"certificate_selection": map[string]any{"any_tag": []string{"bench"}},
				"default_sni":           benchHost,
			}}
		}
		return srv
	}
	data := filepath.Join(s.dir, "caddy")
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "WARN"}}},
		"storage": map[string]any{"module": "file_system", "root": data},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{
				"plain": server(httpPort, false),
				"tls":   server(httpsPort, true),
			}},
			"tls": map[string]any{"certificates": map[string]any{"load_files": []any{map[string]any{
				"certificate": s.cert.cert, "key": s.cert.key, "tags": []string{"bench"},
			}}}},
		},
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, nil, "", err
	}
	path := filepath.Join(s.dir, "caddy.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return nil, nil, "", err
	}
	// Caddy keeps its state and autosaved configuration under these.
	env := []string{"HOME=" + data, "XDG_DATA_HOME=" + data, "XDG_CONFIG_HOME=" + data}
	return []string{"caddy", "run", "--config", path}, env, fmt.Sprintf("one process, GOMAXPROCS %d (default), no access log", s.threads), nil
}

func writeTemplate(path string, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// backends is the child process serving the upstreams.
type backends struct {
	proc  *proc
	addrs []string
}

func (b *backends) stop() { b.proc.stop() }

// startBackends starts n backends on free ports in one child process and
// waits until each answers.
func startBackends(ctx context.Context, self, dir string, n int) (*backends, error) {
	var addrs []string
	for range 10 * n {
		port, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		if a := hostPort(port); !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
		if len(addrs) == n {
			break
		}
	}
	if len(addrs) < n {
		return nil, fmt.Errorf("found %d free ports of the %d backends need", len(addrs), n)
	}
	pr, err := startProc("backends", []string{self, "-mode", "backends", "-listen", strings.Join(addrs, ",")}, nil, filepath.Join(dir, "backends.log"))
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := waitServing(ctx, pr, "http://"+a+"/", benchHost, backendBody); err != nil {
			pr.stop()
			return nil, err
		}
	}
	return &backends{proc: pr, addrs: addrs}, nil
}
