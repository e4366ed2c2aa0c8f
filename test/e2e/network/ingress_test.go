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
	certPEM, keyPEM := selfSigned(t, "secure.example")
	if _, err := client.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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

	node := nodeSubnet + ".11"
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	httpClient := &http.Client{
		Timeout: 3 * time.Second,
		// Every name resolves to the node; redirects are looked at, not followed.
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
	get := func(url string) (int, string, http.Header) {
		resp, err := httpClient.Get(url)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), resp.Header
	}

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
	if code, _, h := get("http://secure.example/hostname?x=1"); code != http.StatusPermanentRedirect || h.Get("Location") != "https://secure.example/hostname?x=1" {
		t.Errorf("plain HTTP to a TLS host: %d Location %q, want 308 to https://secure.example/hostname?x=1", code, h.Get("Location"))
	}
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
