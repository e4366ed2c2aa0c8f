package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	applyrbacv1 "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	applyapiregistrationv1 "k8s.io/kube-aggregator/pkg/client/applyconfiguration/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"github.com/skiffdev/skiff/internal/component"
)

// metrics-server (sigs.k8s.io/metrics-server) runs inside every server, as
// DNS does: each scrapes the kubelets' /metrics/resource and serves
// metrics.k8s.io on the server's address, and the API server's aggregator
// sends requests for it to one of them (the metrics-server Service has an
// endpoint per server; --enable-aggregator-routing). The objects follow
// upstream's manifest (components.yaml), so RBAC written for it carries over.
const (
	metricsServerName = "metrics-server"
	// metricsServerUser is its identity (metrics-server.kubeconfig).
	metricsServerUser = "system:metrics-server"
	// metricsAPIService is the APIService of metrics.k8s.io.
	metricsAPIService = "v1beta1.metrics.k8s.io"
	// metricsResolution is how often it scrapes the kubelets (upstream's
	// manifest: 15s).
	metricsResolution = "15s"
)

// metricsServerArgs are metrics-server's flags: it serves on ip's port and
// reaches the kubelets at their InternalIP and reported port.
func (s *Server) metricsServerArgs(ip net.IP) []string {
	f := s.files
	flags := map[string]string{
		"bind-address":                    ip.String(),
		"secure-port":                     strconv.Itoa(s.cfg.MetricsServerPort),
		"tls-cert-file":                   f.metricsServerCert,
		"tls-private-key-file":            f.metricsServerKey,
		"kubeconfig":                      f.metricsServerKubeconfig,
		"authentication-kubeconfig":       f.metricsServerKubeconfig,
		"authorization-kubeconfig":        f.metricsServerKubeconfig,
		"kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
		"kubelet-use-node-status-port":    "true",
		// The kubelets serve with certificates they sign themselves.
		"kubelet-insecure-tls": "true",
		"metric-resolution":    metricsResolution,
	}
	return component.Args(flags, nil)
}

// runMetricsServer registers metrics.k8s.io with the aggregator, publishes
// this server's endpoint and runs metrics-server until ctx ends.
func (s *Server) runMetricsServer(ctx context.Context, client kubernetes.Interface, agg aggregator.Interface, ip net.IP) error {
	if err := ensureMetricsAPI(ctx, client, agg, s.files.caCert); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sv := serverService{
		name:   metricsServerName,
		labels: map[string]string{"k8s-app": metricsServerName},
		ports: []corev1.ServicePort{{
			Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(s.cfg.MetricsServerPort)),
		}},
	}
	if err := s.keepEndpoint(ctx, client, sv, ip); err != nil {
		return err
	}
	return component.MetricsServer(ctx, s.metricsServerArgs(ip))
}

// ensureMetricsAPI applies metrics-server's RBAC and the APIService
// v1beta1.metrics.k8s.io, whose caBundle is the cluster CA bundle.
func ensureMetricsAPI(ctx context.Context, client kubernetes.Interface, agg aggregator.Interface, caFile string) error {
	apply := metav1.ApplyOptions{FieldManager: dnsFieldManager, Force: true}
	rbac := client.RbacV1()
	readVerbs := []string{"get", "list", "watch"}
	roles := []*applyrbacv1.ClusterRoleApplyConfiguration{
		// Whoever may view a namespace may read its pods' metrics.
		applyrbacv1.ClusterRole("system:aggregated-metrics-reader").
			WithLabels(map[string]string{
				"k8s-app": metricsServerName,
				"rbac.authorization.k8s.io/aggregate-to-admin": "true",
				"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
				"rbac.authorization.k8s.io/aggregate-to-view":  "true",
			}).
			WithRules(applyrbacv1.PolicyRule().WithAPIGroups("metrics.k8s.io").WithResources("pods", "nodes").WithVerbs(readVerbs...)),
		applyrbacv1.ClusterRole(metricsServerUser).
			WithLabels(map[string]string{"k8s-app": metricsServerName}).
			WithRules(
				applyrbacv1.PolicyRule().WithAPIGroups("").WithResources("nodes/metrics").WithVerbs("get"),
				applyrbacv1.PolicyRule().WithAPIGroups("").WithResources("pods", "nodes").WithVerbs(readVerbs...),
			),
	}
	for _, r := range roles {
		if _, err := rbac.ClusterRoles().Apply(ctx, r, apply); err != nil {
			return fmt.Errorf("apply ClusterRole %s: %w", *r.Name, err)
		}
	}
	user := applyrbacv1.Subject().WithKind(rbacv1.UserKind).WithName(metricsServerUser).WithAPIGroup(rbacv1.GroupName)
	for name, role := range map[string]string{
		metricsServerUser:                      metricsServerUser,
		"metrics-server:system:auth-delegator": "system:auth-delegator",
	} {
		b := applyrbacv1.ClusterRoleBinding(name).
			WithLabels(map[string]string{"k8s-app": metricsServerName}).
			WithRoleRef(applyrbacv1.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(role)).
			WithSubjects(user)
		if _, err := rbac.ClusterRoleBindings().Apply(ctx, b, apply); err != nil {
			return fmt.Errorf("apply ClusterRoleBinding %s: %w", name, err)
		}
	}
	// It reads the front proxy's CA from kube-system.
	reader := applyrbacv1.RoleBinding("metrics-server-auth-reader", metav1.NamespaceSystem).
		WithLabels(map[string]string{"k8s-app": metricsServerName}).
		WithRoleRef(applyrbacv1.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName("extension-apiserver-authentication-reader")).
		WithSubjects(user)
	if _, err := rbac.RoleBindings(metav1.NamespaceSystem).Apply(ctx, reader, apply); err != nil {
		return fmt.Errorf("apply RoleBinding metrics-server-auth-reader: %w", err)
	}
	caBundle, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	api := applyapiregistrationv1.APIService(metricsAPIService).
		WithLabels(map[string]string{"k8s-app": metricsServerName}).
		WithSpec(applyapiregistrationv1.APIServiceSpec().
			WithGroup("metrics.k8s.io").WithVersion("v1beta1").
			WithGroupPriorityMinimum(100).WithVersionPriority(100).
			WithCABundle(caBundle...).
			WithService(applyapiregistrationv1.ServiceReference().
				WithNamespace(metav1.NamespaceSystem).WithName(metricsServerName).WithPort(443)))
	if _, err := agg.ApiregistrationV1().APIServices().Apply(ctx, api, apply); err != nil {
		return fmt.Errorf("apply APIService %s: %w", metricsAPIService, err)
	}
	return nil
}

// metricsAPIWait bounds how long the server's start waits for
// metrics.k8s.io to be available (clients' discovery warns until then).
const metricsAPIWait = 30 * time.Second

// waitMetricsAPI waits until the APIService of metrics.k8s.io is
// Available, or metricsAPIWait has passed (then it logs why, and the
// server goes on: the aggregator keeps checking).
func (s *Server) waitMetricsAPI(ctx context.Context, agg aggregator.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, metricsAPIWait)
	defer cancel()
	var last string
	for {
		api, err := agg.ApiregistrationV1().APIServices().Get(ctx, metricsAPIService, metav1.GetOptions{})
		if err == nil {
			for _, c := range api.Status.Conditions {
				if c.Type == apiregistrationv1.Available {
					if c.Status == apiregistrationv1.ConditionTrue {
						return nil
					}
					last = c.Reason + ": " + c.Message
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				s.cfg.Log.Warn("metrics.k8s.io is not available yet", "after", metricsAPIWait, "why", last)
				return nil
			}
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// withdrawMetricsServer removes this server's endpoint of metrics-server
// (it runs none) and, when no server has one left, the APIService, so that
// discovery does not report metrics.k8s.io unavailable for ever.
func withdrawMetricsServer(ctx context.Context, client kubernetes.Interface, agg aggregator.Interface) error {
	slices := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	err := slices.Delete(ctx, sliceName(metricsServerName, Hostname()), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	left, err := slices.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + metricsServerName})
	if err != nil || len(left.Items) > 0 {
		return err
	}
	api, err := agg.ApiregistrationV1().APIServices().Get(ctx, metricsAPIService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && api.Labels["k8s-app"] != metricsServerName {
		return nil // none, or not skiff's: a metrics-server installed by hand
	}
	if err != nil {
		return err
	}
	err = agg.ApiregistrationV1().APIServices().Delete(ctx, api.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &api.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
