package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	applycorev1 "k8s.io/client-go/applyconfigurations/core/v1"
	applydiscoveryv1 "k8s.io/client-go/applyconfigurations/discovery/v1"
	applymetav1 "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"

	clusterdns "github.com/skiffdev/skiff/internal/dns"
)

// The kube-dns Service, as Kubernetes clients (and kubeadm clusters) know it.
const (
	dnsServiceName = "kube-dns"
	// dnsManagedBy marks the EndpointSlices skiff writes for it, so that the
	// EndpointSlice controllers leave them alone. A label value, so no "/"
	// (upstream's own is endpointslice-controller.k8s.io).
	dnsManagedBy = "dns.skiff.dev"
	// dnsFieldManager owns the fields skiff applies (server-side apply).
	dnsFieldManager = "skiff"
)

// dnsAddress is where this server's DNS listens: the advertise address, or
// else the host's main address (which the kubelet also reports).
func (c *Config) dnsAddress() (net.IP, error) {
	if c.AdvertiseAddress != "" {
		ip := net.ParseIP(c.AdvertiseAddress)
		if ip == nil {
			return nil, fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddress)
		}
		return ip, nil
	}
	return utilnet.ChooseHostInterface()
}

// runDNS publishes this server as the cluster's DNS and serves it until ctx
// ends. Each server runs it: DNS is not leader-elected, every server answers,
// and kube-proxy spreads the queries to 10.43.0.10 over all of them.
// Every dnsRepublish it applies its EndpointSlice again (a no-op unless
// another server pruned it) and prunes those of servers that are gone.
func (s *Server) runDNS(ctx context.Context, client kubernetes.Interface, srv *clusterdns.Server, ip net.IP) error {
	publish := func() error {
		return publishDNS(ctx, client, s.cfg.Cluster.ClusterDNS, ip, s.cfg.DNSPort, Hostname())
	}
	if err := publish(); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(dnsRepublish)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := publish()
			if err == nil {
				err = pruneDNS(ctx, client, ip)
			}
			if err != nil && ctx.Err() == nil {
				s.cfg.Log.Debug("cluster DNS endpoints", "err", err)
			}
		}
	}()
	return srv.Run(ctx)
}

// dnsRepublish is how often each server checks the kube-dns endpoints.
const dnsRepublish = 10 * time.Second

// pruneDNS deletes the kube-dns EndpointSlices of servers whose API server
// has left the kubernetes Service's endpoints (a server that died leaves
// them once its lease expires), so that kube-proxy stops sending queries
// there; a server that comes back publishes its slice again. The slice of
// own, this server's address, is never pruned.
func pruneDNS(ctx context.Context, client kubernetes.Interface, own net.IP) error {
	apis, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=kubernetes",
	})
	if err != nil {
		return err
	}
	live := map[string]bool{own.String(): true}
	for _, slice := range apis.Items {
		for _, e := range slice.Endpoints {
			for _, a := range e.Addresses {
				live[a] = true
			}
		}
	}
	if len(live) == 1 {
		return nil // no API server listed (the lease reconciler starting): prune nothing
	}
	slices := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	dns, err := slices.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + dnsManagedBy})
	if err != nil {
		return err
	}
	for _, slice := range dns.Items {
		gone := true
		for _, e := range slice.Endpoints {
			for _, a := range e.Addresses {
				gone = gone && !live[a]
			}
		}
		if !gone {
			continue
		}
		err := slices.Delete(ctx, slice.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &slice.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

// publishDNS makes the kube-dns Service (ClusterIP clusterIP, no selector)
// and this server's EndpointSlice for it, named after host and holding ip and
// port. Both are applied (server-side apply), so it is idempotent and repairs
// whatever a previous start left behind. Other servers' slices are left
// alone.
func publishDNS(ctx context.Context, client kubernetes.Interface, clusterIP string, ip net.IP, port int, host string) error {
	target := intstr.FromInt32(int32(port))
	svc, err := client.CoreV1().Services(metav1.NamespaceSystem).Apply(ctx,
		applycorev1.Service(dnsServiceName, metav1.NamespaceSystem).
			WithLabels(map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS"}).
			WithSpec(applycorev1.ServiceSpec().
				WithType(corev1.ServiceTypeClusterIP).
				WithClusterIP(clusterIP).
				WithPorts(
					applycorev1.ServicePort().WithName("dns").WithProtocol(corev1.ProtocolUDP).WithPort(53).WithTargetPort(target),
					applycorev1.ServicePort().WithName("dns-tcp").WithProtocol(corev1.ProtocolTCP).WithPort(53).WithTargetPort(target),
				)),
		metav1.ApplyOptions{FieldManager: dnsFieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply Service %s/%s: %w", metav1.NamespaceSystem, dnsServiceName, err)
	}

	addressType := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		addressType = discoveryv1.AddressTypeIPv6
	}
	name := dnsSliceName(host)
	slice := applydiscoveryv1.EndpointSlice(name, metav1.NamespaceSystem).
		WithLabels(map[string]string{
			discoveryv1.LabelServiceName: dnsServiceName,
			discoveryv1.LabelManagedBy:   dnsManagedBy,
		}).
		WithAddressType(addressType).
		WithEndpoints(applydiscoveryv1.Endpoint().
			WithAddresses(ip.String()).
			WithConditions(applydiscoveryv1.EndpointConditions().WithReady(true).WithServing(true).WithTerminating(false))).
		WithPorts(
			applydiscoveryv1.EndpointPort().WithName("dns").WithProtocol(corev1.ProtocolUDP).WithPort(int32(port)),
			applydiscoveryv1.EndpointPort().WithName("dns-tcp").WithProtocol(corev1.ProtocolTCP).WithPort(int32(port)),
		)
	if svc.UID != "" {
		// Deleting the Service deletes its slices, as for the controller's own.
		slice.WithOwnerReferences(applymetav1.OwnerReference().
			WithAPIVersion("v1").WithKind("Service").WithName(svc.Name).WithUID(svc.UID))
	}
	if _, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Apply(ctx, slice,
		metav1.ApplyOptions{FieldManager: dnsFieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply EndpointSlice %s/%s: %w", metav1.NamespaceSystem, name, err)
	}
	return nil
}

// dnsSliceName is kube-dns-<host>, the host name made a valid object name.
func dnsSliceName(host string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	h := strings.Trim(b.String(), "-.")
	if h == "" {
		h = "localhost"
	}
	const maxName = 253
	name := dnsServiceName + "-" + h
	if len(name) > maxName {
		name = strings.TrimRight(name[:maxName], "-.")
	}
	return name
}

// dnsListenAddr is ip:port.
func dnsListenAddr(ip net.IP, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}
