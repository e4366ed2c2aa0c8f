package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Test builders, in the scheduler's MakePod().….Obj() style.

// epoch is when test objects are created, plus their age in seconds.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type ingressBuilder struct{ i networkingv1.Ingress }

// makeIngress starts an Ingress of class skiff created at epoch.
func makeIngress(namespace, name string) *ingressBuilder {
	return &ingressBuilder{networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, CreationTimestamp: metav1.NewTime(epoch)},
		Spec:       networkingv1.IngressSpec{IngressClassName: ptr.To(ClassName)},
	}}
}

func (b *ingressBuilder) class(c string) *ingressBuilder {
	b.i.Spec.IngressClassName = ptr.To(c)
	return b
}

func (b *ingressBuilder) noClass() *ingressBuilder {
	b.i.Spec.IngressClassName = nil
	return b
}

func (b *ingressBuilder) annotate(k, v string) *ingressBuilder {
	if b.i.Annotations == nil {
		b.i.Annotations = map[string]string{}
	}
	b.i.Annotations[k] = v
	return b
}

// age makes the Ingress created s seconds after epoch.
func (b *ingressBuilder) age(s int) *ingressBuilder {
	b.i.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(s) * time.Second))
	return b
}

// serviceBackend names a Service port: an int is a number, a string a name.
func serviceBackend(svc string, port any) networkingv1.IngressBackend {
	sb := &networkingv1.IngressServiceBackend{Name: svc}
	switch p := port.(type) {
	case int:
		sb.Port.Number = int32(p)
	case string:
		sb.Port.Name = p
	default:
		panic(fmt.Sprintf("port %v", port))
	}
	return networkingv1.IngressBackend{Service: sb}
}

// path adds a path to the rule of host, creating the rule when needed.
func (b *ingressBuilder) path(host, path string, pt networkingv1.PathType, svc string, port any) *ingressBuilder {
	return b.pathTo(host, path, pt, serviceBackend(svc, port))
}

func (b *ingressBuilder) pathTo(host, path string, pt networkingv1.PathType, be networkingv1.IngressBackend) *ingressBuilder {
	p := networkingv1.HTTPIngressPath{Path: path, PathType: ptr.To(pt), Backend: be}
	for i := range b.i.Spec.Rules {
		if r := &b.i.Spec.Rules[i]; r.Host == host {
			r.HTTP.Paths = append(r.HTTP.Paths, p)
			return b
		}
	}
	b.i.Spec.Rules = append(b.i.Spec.Rules, networkingv1.IngressRule{
		Host:             host,
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{p}}},
	})
	return b
}

func (b *ingressBuilder) defaultBackend(svc string, port any) *ingressBuilder {
	be := serviceBackend(svc, port)
	b.i.Spec.DefaultBackend = &be
	return b
}

func (b *ingressBuilder) tls(secret string, hosts ...string) *ingressBuilder {
	b.i.Spec.TLS = append(b.i.Spec.TLS, networkingv1.IngressTLS{Hosts: hosts, SecretName: secret})
	return b
}

func (b *ingressBuilder) obj() *networkingv1.Ingress { return &b.i }

func resourceBackend() networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{APIGroup: ptr.To("example.com"), Kind: "Bucket", Name: "b"}}
}

func makeClass(name string, isDefault bool) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: "skiff.dev/ingress"}}
	if isDefault {
		c.Annotations = map[string]string{annDefaultClass: "true"}
	}
	return c
}

type serviceBuilder struct{ s corev1.Service }

func makeService(namespace, name string) *serviceBuilder {
	return &serviceBuilder{corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}}
}

func (b *serviceBuilder) port(name string, port int32) *serviceBuilder {
	b.s.Spec.Ports = append(b.s.Spec.Ports, corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port})
	return b
}

// clusterIP sets the Service's cluster IP ("None": headless).
func (b *serviceBuilder) clusterIP(ip string) *serviceBuilder {
	b.s.Spec.ClusterIP = ip
	return b
}

func (b *serviceBuilder) externalName(n string) *serviceBuilder {
	b.s.Spec.Type, b.s.Spec.ExternalName = corev1.ServiceTypeExternalName, n
	return b
}

func (b *serviceBuilder) obj() *corev1.Service { return &b.s }

type sliceBuilder struct{ s discoveryv1.EndpointSlice }

func makeSlice(namespace, service, suffix string) *sliceBuilder {
	return &sliceBuilder{discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: service + "-" + suffix,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}}
}

func (b *sliceBuilder) port(name string, port int32) *sliceBuilder {
	b.s.Ports = append(b.s.Ports, discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)})
	return b
}

// endpoint adds an address with the given conditions (nil: unreported).
func (b *sliceBuilder) endpoint(ip string, ready, terminating *bool) *sliceBuilder {
	b.s.Endpoints = append(b.s.Endpoints, discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating},
	})
	return b
}

func (b *sliceBuilder) ready(ips ...string) *sliceBuilder {
	for _, ip := range ips {
		b.endpoint(ip, ptr.To(true), nil)
	}
	return b
}

func (b *sliceBuilder) obj() *discoveryv1.EndpointSlice { return &b.s }

// sliceFor is a one-endpoint slice at addr, whose port is named "http".
func sliceFor(namespace, service string, addr netip.AddrPort) *discoveryv1.EndpointSlice {
	return makeSlice(namespace, service, fmt.Sprint(addr.Port())).port("http", int32(addr.Port())).ready(addr.Addr().String()).obj()
}

// makeCert returns PEM certificate and key for hosts, valid in [from, to).
func makeCert(t testing.TB, from, to time.Time, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    from,
		NotAfter:     to,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func makeSecret(namespace, name string, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
}

// validSecret is a TLS Secret for hosts valid around epoch and now.
func validSecret(t testing.TB, namespace, name string, hosts ...string) *corev1.Secret {
	c, k := makeCert(t, epoch.AddDate(-1, 0, 0), time.Now().AddDate(1, 0, 0), hosts...)
	return makeSecret(namespace, name, c, k)
}
