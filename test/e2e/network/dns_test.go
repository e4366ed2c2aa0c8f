package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffdev/skiff/internal/freeport"
)

// The stub resolver stands for the world outside the cluster: the server's
// DNS forwards to it (SERVER_ARGS=--dns-upstream), so forwarding is tested
// without touching the host's real resolvers.
const (
	stubName = "stub.example."
	stubIP   = "192.0.2.53"
)

var (
	stubAddr    string
	stubQueries atomic.Int64
)

// startStubResolver serves stubName's A record on a loopback UDP port and
// NXDOMAIN for every other name; it sets stubAddr.
func startStubResolver() (stop func(), err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		stubQueries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			switch {
			case strings.EqualFold(q.Name, stubName) && q.Qtype == dns.TypeA:
				m.Answer = []dns.RR{&dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
					A:   net.ParseIP(stubIP),
				}}
			case strings.EqualFold(q.Name, stubName): // the name exists: NODATA
			default:
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	stubAddr = pc.LocalAddr().String()
	return func() { _ = srv.Shutdown() }, nil
}

// createPod creates a pod of testhost's image sleeping forever, shaped by
// mutate; waitRunning waits for it.
func createPod(t *testing.T, ns, name string, labels map[string]string, mutate func(*corev1.PodSpec)) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: "localhost/skiff/testhost:latest", Args: []string{"pause"},
			}},
		},
	}
	if mutate != nil {
		mutate(&pod.Spec)
	}
	if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitRunning(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 2*time.Minute, name+" running", func() bool {
		var err error
		pod, err = client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""
	})
	return pod
}

// nameservers are the "nameserver" lines of a resolv.conf, in order.
func nameservers(conf string) []string {
	var out []string
	for _, l := range strings.Split(conf, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// TestClusterDNS asks the cluster DNS for every record kind from inside a
// pod with busybox's nslookup, and checks the resolv.conf and /etc/hosts the
// agent gives pods for each dnsPolicy.
func TestClusterDNS(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	// Everything is created first, then waited for.
	headless := createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-headless"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "dns"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	})
	createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: strings.TrimSuffix(stubName, ".")},
	})
	// A StatefulSet's pods get hostname and subdomain: web-N.web.NS.svc.
	createService(t, ns, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "web"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	})
	two := int32(2)
	webLabels := map[string]string{"app": "web"}
	if _, err := client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &two, ServiceName: "web", PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: webLabels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers:                    []corev1.Container{{Name: "main", Image: "localhost/skiff/testhost:latest", Args: []string{"pause"}}},
				},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod(t, ns, "policy-default", nil, func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSDefault })
	ndots := "2"
	createPod(t, ns, "policy-none", nil, func(s *corev1.PodSpec) {
		s.DNSPolicy = corev1.DNSNone
		s.DNSConfig = &corev1.PodDNSConfig{
			Nameservers: []string{"192.0.2.10", "192.0.2.11"},
			Searches:    []string{"one.example", "two.example"},
			Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}, {Name: "edns0"}},
		}
	})
	pods := spreadDeployment(t, ns, "dns", 3)
	svc := service(t, ns, "dns", corev1.ServiceTypeClusterIP)

	from := pods[0].Name
	lookup := func(args string) string {
		out, _ := inPod(t, ns, from, "nslookup "+args+" 2>&1")
		return out
	}
	domain := ns + ".svc.cluster.local."

	// Fully qualified names (trailing dot) go to the cluster DNS alone,
	// without the search path.
	eventually(t, time.Minute, "Service A record", func() bool {
		return strings.Contains(lookup("dns."+domain), svc.Spec.ClusterIP)
	})
	if out := lookup("kubernetes.default.svc.cluster.local."); !strings.Contains(out, "10.43.0.1\n") {
		t.Errorf("kubernetes.default: %s", out)
	}
	eventually(t, time.Minute, "one A record per ready pod of the headless Service", func() bool {
		out := lookup(headless.Name + "." + domain)
		for _, p := range pods {
			if !strings.Contains(out, p.Status.PodIP) {
				return false
			}
		}
		return true
	})
	if out := lookup("nosuch." + domain); !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("unknown name: want NXDOMAIN, got %s", out)
	}
	// A name that exists with no record of the type asked: NODATA, not
	// NXDOMAIN (the cluster is IPv4: no AAAA).
	// (busybox prints the server and nothing else for NODATA; answers are
	// "Address: IP" lines, errors "** server can't find" or ";;" lines.)
	if out := lookup("-type=aaaa dns." + domain); !strings.Contains(out, "Server:") ||
		regexp.MustCompile(`(?m)^Address: |NXDOMAIN|can't find|^;;`).MatchString(out) {
		t.Errorf("AAAA of an IPv4 Service: want no answer (NODATA), got %s", out)
	}

	// SRV for named ports: the Service's name for a ClusterIP Service, one
	// per ready endpoint (by its own name) for a headless one.
	if out := lookup("-type=srv _http._tcp.dns." + domain); !strings.Contains(out, " 80 dns."+ns+".svc.cluster.local") {
		t.Errorf("SRV of the ClusterIP Service's named port: %s", out)
	}
	out := lookup("-type=srv _http._tcp.dns-headless." + domain)
	if n := strings.Count(out, " 8080 "); n != 3 {
		t.Errorf("SRV of the headless Service: %d targets on 8080, want 3:\n%s", n, out)
	}

	// PTR: a ClusterIP and a pod address of a headless Service.
	if out := lookup(svc.Spec.ClusterIP); !strings.Contains(out, "name = dns."+ns+".svc.cluster.local") {
		t.Errorf("PTR of the ClusterIP %s: %s", svc.Spec.ClusterIP, out)
	}
	dashed := strings.ReplaceAll(pods[1].Status.PodIP, ".", "-")
	if out := lookup(pods[1].Status.PodIP); !strings.Contains(out, "name = "+dashed+".dns-headless."+ns+".svc.cluster.local") {
		t.Errorf("PTR of endpoint %s: %s", pods[1].Status.PodIP, out)
	}
	// Pod A records: a-b-c-d.NS.pod.cluster.local.
	if out := lookup(dashed + "." + ns + ".pod.cluster.local."); !strings.Contains(out, "Address: "+pods[1].Status.PodIP) {
		t.Errorf("pod A record %s: %s", dashed, out)
	}

	// StatefulSet pods: web-0.web.NS.svc.cluster.local, and the pod knows
	// its own fully qualified name.
	web0 := waitRunning(t, ns, "web-0")
	waitRunning(t, ns, "web-1")
	eventually(t, time.Minute, "web-0.web A record", func() bool {
		return strings.Contains(lookup("web-0.web."+domain), "Address: "+web0.Status.PodIP)
	})
	if hosts, err := inPod(t, ns, "web-0", "cat /etc/hosts; hostname"); err != nil ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(web0.Status.PodIP)+`\s+web-0\.web\.`+regexp.QuoteMeta(ns)+`\.svc\.cluster\.local\s+web-0$`).MatchString(hosts) ||
		!strings.HasSuffix(strings.TrimSpace(hosts), "\nweb-0") {
		t.Errorf("web-0's /etc/hosts and hostname (err %v):\n%s", err, hosts)
	}

	// ExternalName: a CNAME to the external name, which the cluster DNS
	// follows (by forwarding) so plain resolvers get addresses too.
	if out := lookup("-type=cname ext." + domain); !strings.Contains(out, "canonical name = "+strings.TrimSuffix(stubName, ".")) {
		t.Errorf("CNAME of the ExternalName Service: %s", out)
	}
	if out := lookup("ext." + domain); !strings.Contains(out, stubIP) {
		t.Errorf("A of the ExternalName Service (through its target): %s", out)
	}

	// Other names are forwarded to the upstream resolver (the test's stub):
	// its answers and its NXDOMAIN come back.
	before := stubQueries.Load()
	if out := lookup(stubName); !strings.Contains(out, "Address: "+stubIP) {
		t.Errorf("forwarded name %s: %s", stubName, out)
	}
	if out := lookup("nosuch.example."); !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("forwarded unknown name: want NXDOMAIN, got %s", out)
	}
	if stubQueries.Load() == before {
		t.Errorf("the stub resolver saw no query: names outside the cluster were not forwarded to --dns-upstream")
	}

	// The same questions to CoreDNS's kubernetes plugin: the same answers.
	reverse := func(ip string) string { r, _ := dns.ReverseAddr(ip); return r }
	var questions []dns.Question
	for _, q := range []struct {
		name string
		typ  uint16
	}{
		{"dns." + domain, dns.TypeA}, {"dns." + domain, dns.TypeAAAA}, {"dns." + domain, dns.TypeSRV},
		{"dns-headless." + domain, dns.TypeA}, {"dns-headless." + domain, dns.TypeSRV},
		{"_http._tcp.dns." + domain, dns.TypeSRV}, {"_http._tcp.dns-headless." + domain, dns.TypeSRV},
		{"_http._udp.dns." + domain, dns.TypeSRV},
		{"nosuch." + domain, dns.TypeA}, {"nosuch.svc.cluster.local.", dns.TypeA},
		{"kubernetes.default.svc.cluster.local.", dns.TypeA},
		{"web-0.web." + domain, dns.TypeA}, {"web." + domain, dns.TypeA},
		{dashed + "." + ns + ".pod.cluster.local.", dns.TypeA},
		{reverse(svc.Spec.ClusterIP), dns.TypePTR}, {reverse(web0.Status.PodIP), dns.TypePTR},
		{"ext." + domain, dns.TypeCNAME}, {"ext." + domain, dns.TypeA},
		{"dns-version.cluster.local.", dns.TypeTXT}, {"cluster.local.", dns.TypeSOA},
		{stubName, dns.TypeA}, {"nosuch.example.", dns.TypeA},
	} {
		questions = append(questions, dns.Question{Name: q.name, Qtype: q.typ, Qclass: dns.ClassINET})
	}
	t.Run("matches CoreDNS", func(t *testing.T) { matchesCoreDNS(t, questions) })

	// The resolver's search path (ClusterFirst, ndots:5) finds short names.
	seen := hostnames(t, ns, pods[1].Name, "http://dns/hostname", 6)
	if seen[""] > 0 {
		t.Errorf("short name through the search path failed: %v", seen)
	}

	// resolv.conf by dnsPolicy.
	conf, err := inPod(t, ns, from, "cat /etc/resolv.conf")
	want := fmt.Sprintf("search %s.svc.cluster.local svc.cluster.local cluster.local", ns)
	if err != nil || !slices.Equal(nameservers(conf), []string{"10.43.0.10"}) || !strings.Contains(conf, want) || !strings.Contains(conf, "options ndots:5") {
		t.Errorf("ClusterFirst resolv.conf (err %v): want nameserver 10.43.0.10, %q, ndots:5:\n%s", err, want, conf)
	}
	if hosts, err := inPod(t, ns, from, "cat /etc/hosts"); err != nil ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(pods[0].Status.PodIP)+`\s+`+regexp.QuoteMeta(from)+`$`).MatchString(hosts) {
		t.Errorf("%s's /etc/hosts lacks its address and name (err %v):\n%s", from, err, hosts)
	}
	waitRunning(t, ns, "policy-default")
	conf, err = inPod(t, ns, "policy-default", "cat /etc/resolv.conf")
	host := hostResolvConf(t)
	if hostNS := nameservers(host); err != nil || len(hostNS) > 0 && !slices.Equal(nameservers(conf), hostNS[:min(3, len(hostNS))]) || strings.Contains(conf, "10.43.0.10") {
		t.Errorf("dnsPolicy Default (err %v): want the node's name servers %v, got:\n%s", err, hostNS, conf)
	}
	waitRunning(t, ns, "policy-none")
	conf, err = inPod(t, ns, "policy-none", "cat /etc/resolv.conf")
	if err != nil || !slices.Equal(nameservers(conf), []string{"192.0.2.10", "192.0.2.11"}) ||
		!strings.Contains(conf, "search one.example two.example") || !strings.Contains(conf, "ndots:2") || !strings.Contains(conf, "edns0") {
		t.Errorf("dnsPolicy None with dnsConfig (err %v):\n%s", err, conf)
	}
}

// hostResolvConf is the file the agents give dnsPolicy Default pods (the
// agent prefers systemd-resolved's list of real servers to its stub).
func hostResolvConf(t *testing.T) string {
	t.Helper()
	for _, f := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
		if data, err := os.ReadFile(f); err == nil {
			return string(data)
		}
	}
	return ""
}

// matchesCoreDNS asks skiff's cluster DNS (at the server's :10053, where the
// kube-dns Service points) and CoreDNS with its kubernetes plugin, run here
// against the same API server and the same stub upstream, the same
// questions, and compares rcode, answers (TTLs aside) and the authority
// section's record types. COREDNS_BIN names the coredns binary (`make test`
// builds v1.12.1 from the Go module proxy into bin/).
func matchesCoreDNS(t *testing.T, questions []dns.Question) {
	t.Helper()
	bin := os.Getenv("COREDNS_BIN")
	if bin == "" {
		t.Fatal("COREDNS_BIN is not set: `make test` builds bin/coredns and sets it")
	}
	port, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	corefile := fmt.Sprintf(`cluster.local:%[1]d in-addr.arpa:%[1]d ip6.arpa:%[1]d {
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %[2]s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . %[3]s
}
.:%[1]d {
    bind 127.0.0.1
    forward . %[3]s
}
`, port, kubeconfig, stubAddr)
	if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-conf", filepath.Join(dir, "Corefile"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	coredns := fmt.Sprintf("127.0.0.1:%d", port)
	skiff := nodeSubnet + ".1:10053"
	ask := func(server string, q dns.Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Qtype)
		c := &dns.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, server)
		return r, err
	}
	// CoreDNS answers once its informers have synced.
	eventually(t, time.Minute, "CoreDNS answering", func() bool {
		r, err := ask(coredns, dns.Question{Name: "kubernetes.default.svc.cluster.local.", Qtype: dns.TypeA})
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
	for _, q := range questions {
		want, err := ask(coredns, q)
		if err != nil {
			t.Errorf("CoreDNS, %s %s: %v", q.Name, dns.TypeToString[q.Qtype], err)
			continue
		}
		got, err := ask(skiff, q)
		if err != nil {
			t.Errorf("skiff, %s %s: %v", q.Name, dns.TypeToString[q.Qtype], err)
			continue
		}
		if g, w := summary(got), summary(want); g != w {
			t.Errorf("%s %s:\nskiff:   %s\nCoreDNS: %s", q.Name, dns.TypeToString[q.Qtype], g, w)
		}
	}
	if t.Failed() {
		t.Logf("CoreDNS's log:\n%s", log.String())
	}
}

// summary is what a client sees of an answer: rcode and the answer and
// authority records, sorted, without TTLs and SOA serials (both count down
// or follow the clock).
func summary(m *dns.Msg) string {
	records := func(rrs []dns.RR) string {
		var out []string
		for _, rr := range rrs {
			rr = dns.Copy(rr)
			rr.Header().Ttl = 0
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Serial = 0
			}
			out = append(out, strings.ToLower(rr.String()))
		}
		slices.Sort(out)
		return strings.Join(out, " | ")
	}
	return fmt.Sprintf("%s; answer [%s]; authority [%s]", dns.RcodeToString[m.Rcode], records(m.Answer), records(m.Ns))
}
