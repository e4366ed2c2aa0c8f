package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
	skiffdns "github.com/skiffdev/skiff/internal/dns"
)

// The DNS phase's records: Service i is svc-NNNN in namespace bench at a
// ClusterIP derived from i, in both servers.
func dnsName(i int) string { return fmt.Sprintf("svc-%04d.bench.svc.cluster.local.", i) }
func dnsIP(i int) string   { return fmt.Sprintf("10.43.%d.%d", 100+i/250, 1+i%250) }

// serveSkiffDNS runs skiff's DNS server over a fake clientset holding n
// Services until SIGTERM; the DNS phase starts it as a child process so that
// it, like CoreDNS, has a process of its own.
func serveSkiffDNS(addr string, n int) error {
	objs := make([]runtime.Object, 0, n)
	for i := range n {
		name, _, _ := strings.Cut(dnsName(i), ".")
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: dnsIP(i), ClusterIPs: []string{dnsIP(i)},
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
			},
		})
	}
	s, err := skiffdns.New(skiffdns.Config{
		ListenAddr: addr,
		Upstreams:  []string{"127.0.0.1:9"}, // never asked: every question is in the zone
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, fake.NewClientset(objs...))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return s.Run(ctx)
}

// dnsServer is a DNS server child process.
type dnsServer struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func (s *dnsServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// cpu is the process's user+system CPU time so far.
func (s *dnsServer) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * (time.Second / 100) // USER_HZ
}

func startDNS(ctx context.Context, name string, argv []string, addr string, logPath string) (*dnsServer, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	s := &dnsServer{name: name, addr: addr, cmd: cmd}
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := new(dns.Msg).SetQuestion(dnsName(0), dns.TypeA)
	deadline := time.Now().Add(time.Minute)
	for {
		r, _, err := c.ExchangeContext(ctx, q, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return s, nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			s.stop()
			return nil, fmt.Errorf("%s not answering %s within 1m (%v); see %s", name, dnsName(0), err, logPath)
		}
	}
}

// coreDNSConfig writes a Corefile and a zone file with the same A records
// (same TTL, 5 s) that skiff's DNS serves for the fake Services.
func coreDNSConfig(dir string, port, n int) (string, error) {
	var zone strings.Builder
	zone.WriteString("$ORIGIN cluster.local.\n")
	zone.WriteString("@ 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n")
	zone.WriteString("@ 5 IN NS ns.dns.cluster.local.\n")
	for i := range n {
		fmt.Fprintf(&zone, "%s 5 IN A %s\n", dnsName(i), dnsIP(i))
	}
	zonePath := filepath.Join(dir, "db.cluster.local")
	if err := os.WriteFile(zonePath, []byte(zone.String()), 0o644); err != nil {
		return "", err
	}
	corefile := filepath.Join(dir, "Corefile")
	conf := fmt.Sprintf("cluster.local:%d {\n    bind 127.0.0.1\n    file %s\n}\n", port, zonePath)
	return corefile, os.WriteFile(corefile, []byte(conf), 0o644)
}

// dnsPhase alternates rounds of the same load against skiff's DNS and
// CoreDNS and reports both and their ratio.
func dnsPhase(ctx context.Context, o options, report *benchkit.Report) error {
	fmt.Println("\n## dns: queries per second, skiff's DNS against CoreDNS")
	dir, err := os.MkdirTemp("", "skiff-bench-dns-")
	if err != nil {
		return err
	}
	defer func() {
		if !o.keep {
			os.RemoveAll(dir)
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var servers []*dnsServer
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s, err := startDNS(ctx, "skiff", []string{self, "-serve-skiff-dns", addr, "-dns-services", strconv.Itoa(o.dnsServices)}, addr, filepath.Join(dir, "skiff-dns.log"))
	if err != nil {
		return err
	}
	servers = append(servers, s)
	if o.coredns != "" {
		port, err := benchkit.FreePort()
		if err != nil {
			return err
		}
		corefile, err := coreDNSConfig(dir, port, o.dnsServices)
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s, err := startDNS(ctx, "CoreDNS", []string{o.coredns, "-conf", corefile}, addr, filepath.Join(dir, "coredns.log"))
		if err != nil {
			return err
		}
		servers = append(servers, s)
		if out, err := exec.Command(o.coredns, "-version").Output(); err == nil {
			fmt.Printf("  %s\n", strings.Join(strings.Fields(string(out)), " "))
		}
	}
	fmt.Printf("  %d A records; %d clients, one UDP socket each, one query in flight per client; %s per round, %d rounds per server, alternating\n",
		o.dnsServices, o.dnsWorkers, o.dnsDuration, o.dnsRounds)
	total := map[string]*dnsResult{}
	for round := range o.dnsRounds {
		for _, s := range servers {
			r, err := loadDNS(ctx, s, o)
			if err != nil {
				return err
			}
			fmt.Printf("  round %d %-8s %s\n", round+1, s.name, r)
			if total[s.name] == nil {
				total[s.name] = &dnsResult{}
			}
			total[s.name].merge(r)
		}
	}
	for _, s := range servers {
		report.Add("DNS "+s.name+", all rounds", total[s.name].String())
	}
	if sk, cd := total["skiff"], total["CoreDNS"]; cd != nil && cd.qps() > 0 {
		report.Add("DNS qps ratio skiff / CoreDNS", fmt.Sprintf("%.2f (CPU per query %.2f)", sk.qps()/cd.qps(), sk.cpuPerQuery()/cd.cpuPerQuery()))
	}
	return nil
}

type dnsResult struct {
	ok, failed int
	wall, cpu  time.Duration
	lat        []time.Duration
}

func (r *dnsResult) qps() float64 { return float64(r.ok) / r.wall.Seconds() }

func (r *dnsResult) cpuPerQuery() float64 {
	if r.ok == 0 {
		return 0
	}
	return r.cpu.Seconds() / float64(r.ok)
}

func (r *dnsResult) merge(o *dnsResult) {
	r.ok += o.ok
	r.failed += o.failed
	r.wall += o.wall
	r.cpu += o.cpu
	r.lat = append(r.lat, o.lat...)
}

func (r *dnsResult) String() string {
	s := benchkit.Summarize(r.lat)
	return fmt.Sprintf("%.0f qps, p50 %s, p99 %s, %d failed of %d, server CPU %.1f µs/query (%.2f cores)",
		r.qps(), benchkit.Ms(s.P50), benchkit.Ms(s.P99), r.failed, r.ok+r.failed,
		1e6*r.cpuPerQuery(), r.cpu.Seconds()/r.wall.Seconds())
}

// loadDNS sends A queries for the records round robin from o.dnsWorkers
// goroutines for o.dnsDuration and checks every answer.
func loadDNS(ctx context.Context, s *dnsServer, o options) (*dnsResult, error) {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex // guards res
		res = &dnsResult{}
	)
	cpu0 := s.cpu()
	start := time.Now()
	end := start.Add(o.dnsDuration)
	for w := range o.dnsWorkers {
		conn, err := dns.Dial("udp", s.addr)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			var lat []time.Duration
			failed := 0
			q := new(dns.Msg)
			for i := w; time.Now().Before(end) && ctx.Err() == nil; i += o.dnsWorkers {
				q.SetQuestion(dnsName(i%o.dnsServices), dns.TypeA)
				t := time.Now()
				_ = conn.SetDeadline(t.Add(time.Second))
				err := conn.WriteMsg(q)
				var r *dns.Msg
				if err == nil {
					r, err = conn.ReadMsg()
				}
				d := time.Since(t)
				if err != nil || r.Id != q.Id || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					failed++
					continue
				}
				if a, ok := r.Answer[0].(*dns.A); !ok || a.A.String() != dnsIP(i%o.dnsServices) {
					failed++
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.ok += len(lat)
			res.failed += failed
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	res.cpu = s.cpu() - cpu0
	return res, nil
}
