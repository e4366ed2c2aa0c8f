package network

import (
	"context"
	"fmt"
	"net"
	"os"
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
	headless, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-headless"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "dns"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: strings.TrimSuffix(stubName, ".")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A StatefulSet's pods get hostname and subdomain: web-N.web.NS.svc.
	if _, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "web"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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
