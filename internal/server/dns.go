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
	// serverEndpointsManagedBy marks the EndpointSlices skiff writes for
	// the Services every server backs, so that the EndpointSlice
	// controllers leave them alone. A label value, so no "/" (upstream's
	// own is endpointslice-controller.k8s.io).
	serverEndpointsManagedBy = "servers.skiff.dev"
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
func (s *Server) runDNS(ctx context.Context, client kubernetes.Interface, srv *clusterdns.Server, ip net.IP) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := s.keepEndpoint(ctx, client, dnsService(s.cfg.Cluster.ClusterDNS, s.cfg.DNSPort), ip); err != nil {
		return err
	}
	return srv.Run(ctx)
}

// keepEndpoint publishes this server's endpoint of sv, then, every
// dnsRepublish until ctx ends, applies it again (a no-op unless another
// server pruned it) and prunes those of servers that are gone.
func (s *Server) keepEndpoint(ctx context.Context, client kubernetes.Interface, sv serverService, ip net.IP) error {
	publish := func() error { return sv.publish(ctx, client, ip, Hostname()) }
	if err := publish(); err != nil {
		return err
	}
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
				err = pruneServerEndpoints(ctx, client, sv.name, ip)
			}
			if err != nil && ctx.Err() == nil {
				s.cfg.Log.Debug("endpoints of the servers", "service", sv.name, "err", err)
			}
		}
	}()
	return nil
}

// dnsRepublish is how often each server checks its endpoints of the
// Services every server backs (kube-dns, metrics-server).
const dnsRepublish = 10 * time.Second

// pruneServerEndpoints deletes the EndpointSlices of service (kube-dns,
// metrics-server) of servers whose API server has left the kubernetes
// Service's endpoints (a server that died leaves them once its lease
// expires), so that kube-proxy and the aggregator stop sending requests
// there; a server that comes back publishes its slices again. The slices
// of own, this server's address, are never pruned.
func pruneServerEndpoints(ctx context.Context, client kubernetes.Interface, service string, own net.IP) error {
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
	published, err := slices.List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelManagedBy + "=" + serverEndpointsManagedBy + "," + discoveryv1.LabelServiceName + "=" + service,
	})
	if err != nil {
		return err
	}
	for _, slice := range published.Items {
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

// serverService is a Service without a selector that every server backs
// with an endpoint of its own, its address (kube-dns, metrics-server).
type serverService struct {
	name   string
	labels map[string]string
	// clusterIP is the Service's address; empty lets the API server choose.
	clusterIP string
	ports     []corev1.ServicePort // Name, Protocol, Port and TargetPort (a number) each
}

// dnsService is kube-dns at clusterIP, port 53 sent to port.
func dnsService(clusterIP string, port int) serverService {
	target := intstr.FromInt32(int32(port))
	return serverService{
		name:      dnsServiceName,
		labels:    map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS"},
		clusterIP: clusterIP,
		ports: []corev1.ServicePort{
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: target},
			{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: target},
		},
	}
}

// publish makes the Service and this server's EndpointSlice for it, named
// after host and holding ip and the ports' targets. Both are applied
// (server-side apply), so it is idempotent and repairs whatever a previous
// start left behind. Other servers' slices are left alone.
func (sv serverService) publish(ctx context.Context, client kubernetes.Interface, ip net.IP, host string) error {
	spec := applycorev1.ServiceSpec().WithType(corev1.ServiceTypeClusterIP)
	if sv.clusterIP != "" {
		spec.WithClusterIP(sv.clusterIP)
	}
	slicePorts := make([]*applydiscoveryv1.EndpointPortApplyConfiguration, 0, len(sv.ports))
	for _, p := range sv.ports {
		spec.WithPorts(applycorev1.ServicePort().WithName(p.Name).WithProtocol(p.Protocol).WithPort(p.Port).WithTargetPort(p.TargetPort))
		slicePorts = append(slicePorts, applydiscoveryv1.EndpointPort().WithName(p.Name).WithProtocol(p.Protocol).WithPort(p.TargetPort.IntVal))
	}
	svc, err := client.CoreV1().Services(metav1.NamespaceSystem).Apply(ctx,
		applycorev1.Service(sv.name, metav1.NamespaceSystem).WithLabels(sv.labels).WithSpec(spec),
		metav1.ApplyOptions{FieldManager: dnsFieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply Service %s/%s: %w", metav1.NamespaceSystem, sv.name, err)
	}

	addressType := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		addressType = discoveryv1.AddressTypeIPv6
	}
	name := sliceName(sv.name, host)
	slice := applydiscoveryv1.EndpointSlice(name, metav1.NamespaceSystem).
		WithLabels(map[string]string{
			discoveryv1.LabelServiceName: sv.name,
			discoveryv1.LabelManagedBy:   serverEndpointsManagedBy,
		}).
		WithAddressType(addressType).
		WithEndpoints(applydiscoveryv1.Endpoint().
			WithAddresses(ip.String()).
			WithConditions(applydiscoveryv1.EndpointConditions().WithReady(true).WithServing(true).WithTerminating(false))).
		WithPorts(slicePorts...)
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

// sliceName is <service>-<host>, the host name made a valid object name.
func sliceName(service, host string) string {
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
	name := service + "-" + h
	if len(name) > maxName {
		name = strings.TrimRight(name[:maxName], "-.")
	}
	return name
}

// dnsListenAddr is ip:port.
func dnsListenAddr(ip net.IP, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}
