package network

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIngress: Ingresses of the default class "skiff" are served by every
// node's proxy on ports 80 and 443, balanced round robin over the Service's
// pods, with TLS by SNI from a kubernetes.io/tls Secret, plain HTTP to a TLS
// host redirected, 404 for a host nobody serves, and the nodes' addresses
// in status (kubectl's ADDRESS).
func TestIngress(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "web", 3)
	service(t, ns, "web", corev1.ServiceTypeClusterIP)
	certPEM := tlsSecret(t, ns, "secure-tls", "secure.example")
	prefix := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	rule := func(host string) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}},
		}}}
	}
	for _, ing := range []*networkingv1.Ingress{
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("plain.example")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "secure"}, Spec: networkingv1.IngressSpec{
			TLS:   []networkingv1.IngressTLS{{Hosts: []string{"secure.example"}, SecretName: "secure-tls"}},
			Rules: []networkingv1.IngressRule{rule("secure.example")},
		}},
	} {
		if _, err := client.NetworkingV1().Ingresses(ns).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	get := ingressClient(certPEM)
	node := nodeSubnet + ".11"

	eventually(t, time.Minute, "the Ingress served on node 1", func() bool {
		code, body, _ := get("http://plain.example/hostname")
		return code == 200 && strings.HasPrefix(body, "web-")
	})
	// Round robin: 30 requests through one node's proxy, 10 to each pod.
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body, _ := get("http://plain.example/hostname")
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
		seen[body]++
	}
	for _, p := range pods {
		if n := seen[p.Name]; n < 8 || n > 12 {
			t.Errorf("pod %s answered %d of 30 requests, want about 10 (round robin): %v", p.Name, n, seen)
		}
	}

	if code, body, _ := get("http://nobody.example/hostname"); code != http.StatusNotFound {
		t.Errorf("a host no Ingress names: %d %q, want 404", code, body)
	}
	// The two Ingresses reach the proxy as two events: the one served
	// above says nothing of the other, so wait for it too.
	var redirect string
	eventually(t, 30*time.Second, "plain HTTP to the TLS host redirected to https://secure.example/hostname?x=1", func() bool {
		code, _, h := get("http://secure.example/hostname?x=1")
		redirect = fmt.Sprintf("%d Location %q", code, h.Get("Location"))
		return code == http.StatusPermanentRedirect && h.Get("Location") == "https://secure.example/hostname?x=1"
	})
	t.Logf("plain HTTP to a TLS host: %s", redirect)
	var body string
	eventually(t, 30*time.Second, "HTTPS with the Secret's certificate", func() bool {
		var code int
		code, body, _ = get("https://secure.example/hostname")
		return code == 200 && strings.HasPrefix(body, "web-")
	})

	var addrs []string
	eventually(t, time.Minute, "status.loadBalancer: the three nodes' addresses", func() bool {
		ing, err := client.NetworkingV1().Ingresses(ns).Get(context.Background(), "plain", metav1.GetOptions{})
		if err != nil {
			return false
		}
		addrs = nil
		for _, in := range ing.Status.LoadBalancer.Ingress {
			addrs = append(addrs, in.IP)
		}
		return len(addrs) == 3
	})
	out, err := kubectl(t, "get", "ingress", "-n", ns, "plain")
	if err != nil || !strings.Contains(out, "skiff") || !strings.Contains(out, node) {
		t.Errorf("kubectl get ingress: want CLASS skiff and ADDRESS with %s: %v\n%s", node, err, out)
	}
}

// tlsSecret creates a kubernetes.io/tls Secret with a self-signed
// certificate for host, and returns the certificate.
func tlsSecret(t *testing.T, ns, name, host string) []byte {
	t.Helper()
	certPEM, keyPEM := selfSigned(t, host)
	if _, err := client.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return certPEM
}

// ingressClient returns a GET through node 1's Ingress proxy (every name
// resolves to it), trusting certPEM, following no redirect, sending
// header, and returning status, body and response headers.
func ingressClient(certPEM []byte) func(url string, header ...string) (int, string, http.Header) {
	return clientTo(nodeSubnet+".11", certPEM)
}

// clientTo is ingressClient for a proxy at addr (a node's or a Gateway's
// address).
func clientTo(node string, certPEM []byte) func(url string, header ...string) (int, string, http.Header) {
	return clientTimeout(node, certPEM, 3*time.Second)
}

// clientTimeout is clientTo with requests that may take up to timeout.
func clientTimeout(node string, certPEM []byte, timeout time.Duration) func(url string, header ...string) (int, string, http.Header) {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	httpClient := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(node, port))
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
		},
	}
	return func(url string, header ...string) (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, err.Error(), nil
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), resp.Header
	}
}

// TestIngressStickiness: a cookie-affine Ingress keeps each client on its
// pod while the Deployment grows from two pods to three, and consistent
// hashing on a header sends each key to one pod.
func TestIngressStickiness(t *testing.T) {
	ns := namespace(t)
	spreadDeployment(t, ns, "sticky", 2)
	service(t, ns, "sticky", corev1.ServiceTypeClusterIP)
	for name, ann := range map[string]map[string]string{
		"cookie": {"skiff.dev/session-affinity": "cookie"},
		"hash":   {"skiff.dev/load-balance": "consistent-hash", "skiff.dev/hash-on": "header:X-User"},
	} {
		hostIngress(t, ns, name, name+".example", "sticky", ann)
	}
	get := ingressClient(nil)
	cookie, pinned := affinityCookie(t, get, "http://cookie.example/hostname", "skiff-affinity")
	answers := func(url string, header ...string) map[string]int { return countAnswers(t, get, 12, url, header...) }
	if seen := answers("http://cookie.example/hostname", "Cookie", cookie); len(seen) != 1 || seen[pinned] != 12 {
		t.Errorf("with the cookie of %s: answers %v, want all from %s", pinned, seen, pinned)
	}
	if seen := answers("http://cookie.example/hostname"); len(seen) != 2 {
		t.Errorf("without a cookie: answers %v, want both pods (round robin)", seen)
	}
	alice := answers("http://hash.example/hostname", "X-User", "alice")
	if len(alice) != 1 {
		t.Errorf("consistent hash on X-User: alice reached %v, want one pod", alice)
	}

	scaleDeployment(t, ns, "sticky", 3)
	eventually(t, 2*time.Minute, "the third pod in rotation", func() bool {
		return len(answers("http://cookie.example/hostname")) == 3
	})
	if seen := answers("http://cookie.example/hostname", "Cookie", cookie); len(seen) != 1 || seen[pinned] != 12 {
		t.Errorf("after scaling to three, with the cookie of %s: answers %v, want all from %s", pinned, seen, pinned)
	}
}

// affinityCookie GETs url through get until the answer sets the cookie
// name, and returns it as a Cookie header value with the pod that answered.
func affinityCookie(t *testing.T, get func(url string, header ...string) (int, string, http.Header), url, name string) (cookie, pod string) {
	t.Helper()
	eventually(t, time.Minute, "a "+name+" cookie from "+url, func() bool {
		code, body, h := get(url)
		c, _ := http.ParseSetCookie(h.Get("Set-Cookie"))
		if code != 200 || c == nil || c.Name != name {
			return false
		}
		cookie, pod = c.Name+"="+c.Value, body
		return true
	})
	return cookie, pod
}

// scaleDeployment sets the Deployment's replicas.
func scaleDeployment(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	scale, err := client.AppsV1().Deployments(ns).GetScale(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := client.AppsV1().Deployments(ns).UpdateScale(context.Background(), name, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// countAnswers sends n GETs of url through get, with header, and counts
// the bodies (the pods' names); any status but 200 fails the test.
func countAnswers(t *testing.T, get func(url string, header ...string) (int, string, http.Header), n int, url string, header ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		code, body, _ := get(url, header...)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", url, code, body)
		}
		seen[body]++
	}
	return seen
}

// servedBy sends n GETs of url through get and counts the bodies (the
// pods' names) of the answers that are 200; the others are not counted.
func servedBy(get func(url string, header ...string) (int, string, http.Header), n int, url string) map[string]int {
	seen := map[string]int{}
	for range n {
		if code, body, _ := get(url); code == 200 {
			seen[body]++
		}
	}
	return seen
}

// selfSigned makes a certificate and key for host, PEM-encoded.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestIngressActiveHealthCheck: a Service annotated for active health
// checks loses the pod whose /healthz fails from every node's Ingress
// balancing (its readiness, which the Service's endpoints follow, stays
// good), then gets it back.
func TestIngressActiveHealthCheck(t *testing.T) {
	ns := namespace(t)
	pods := spreadDeployment(t, ns, "hc", 2)
	svc := service(t, ns, "hc", corev1.ServiceTypeClusterIP)
	svc.Annotations = map[string]string{"skiff.dev/health-check-path": "/healthz", "skiff.dev/health-check-interval": "200ms"}
	if _, err := client.CoreV1().Services(ns).Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostIngress(t, ns, "hc", "hc.example", "hc", nil)
	get := ingressClient(nil)
	answered := func() map[string]int { return servedBy(get, 10, "http://hc.example/hostname") }
	eventually(t, time.Minute, "both pods serve through the Ingress", func() bool { return len(answered()) == 2 })

	sick := pods[0].Name
	if out, err := inPod(t, ns, sick, "timeout 3 wget -qO- http://127.0.0.1:8080/healthz/fail"); err != nil {
		t.Fatalf("fail %s's /healthz: %v %s", sick, err, out)
	}
	eventually(t, 30*time.Second, sick+" out of the Ingress's balancing", func() bool {
		seen := answered()
		return seen[sick] == 0 && seen[pods[1].Name] == 10
	})
	if out, err := inPod(t, ns, sick, "timeout 3 wget -qO- http://127.0.0.1:8080/healthz/ok"); err != nil {
		t.Fatalf("heal %s's /healthz: %v %s", sick, err, out)
	}
	eventually(t, 30*time.Second, sick+" back in the Ingress's balancing", func() bool { return answered()[sick] > 0 })
}

// TestIngressLoadBalancerService: the nodes' proxies are published as the
// LoadBalancer Service kube-system/skiff-ingress, whose EndpointSlices name
// each node and whose EXTERNAL-IPs (the service load balancer's) reach an
// Ingress on the Service's port.
func TestIngressLoadBalancerService(t *testing.T) {
	ns := namespace(t)
	spreadDeployment(t, ns, "pub", 2)
	service(t, ns, "pub", corev1.ServiceTypeClusterIP)
	prefix := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "pub", Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "pub"}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
		Host: "pub.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}},
		}},
	}}}}
	if _, err := client.NetworkingV1().Ingresses(ns).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var svc *corev1.Service
	eventually(t, time.Minute, "kube-system/skiff-ingress with the three nodes as EXTERNAL-IPs", func() bool {
		var err error
		svc, err = client.CoreV1().Services("kube-system").Get(context.Background(), "skiff-ingress", metav1.GetOptions{})
		return err == nil && len(svc.Status.LoadBalancer.Ingress) == 3
	})
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("skiff-ingress: type %s, externalTrafficPolicy %s; want LoadBalancer, Local", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
	}
	slices, err := client.DiscoveryV1().EndpointSlices("kube-system").List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=skiff-ingress"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.NodeName != nil && e.Conditions.Ready != nil && *e.Conditions.Ready {
				nodes[*e.NodeName] = true
			}
		}
	}
	if len(nodes) != 3 {
		t.Errorf("skiff-ingress endpoints on nodes %v, want the three nodes", nodes)
	}
	port := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		port[p.Name] = p.Port
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if !strings.HasPrefix(in.IP, nodeSubnet+".") {
			t.Errorf("EXTERNAL-IP %s is not a node address", in.IP)
		}
		get := clientTo(in.IP, nil)
		url := fmt.Sprintf("http://pub.example:%d/hostname", port["http"])
		eventually(t, time.Minute, "the Ingress through "+in.IP, func() bool {
			code, body, _ := get(url)
			return code == 200 && strings.HasPrefix(body, "pub-")
		})
	}
	out, err := kubectl(t, "get", "svc", "-n", "kube-system", "skiff-ingress")
	if err != nil || !strings.Contains(out, "LoadBalancer") || !strings.Contains(out, nodeSubnet+".") || !strings.Contains(out, "80/TCP,443/TCP") {
		t.Errorf("kubectl get svc skiff-ingress: want LoadBalancer, node EXTERNAL-IPs and 80/TCP,443/TCP: %v\n%s", err, out)
	}
}
