package server

import (
	"context"
	"fmt"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	applyrbacv1 "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/dashboard"
	"github.com/skiffdev/skiff/internal/fleet/tunnel"
)

// The web dashboard (internal/dashboard): its page is public, served ahead
// of the API server's handler chain; its usage history (charts) and pod
// counts are served inside the chain, to any authenticated user by path
// (ClusterRole dashboardAPIRole), each query then authorized as a list of
// metrics.k8s.io nodes or pods, or of pods, with a SubjectAccessReview.
const dashboardAPIRole = "skiff:dashboard-api"

// dashboardAPIPaths are the dashboard's authenticated paths (usage history,
// pod counts), as RBAC names non-resource URLs.
const dashboardAPIPaths = "/dashboard/api/v1/*"

// newPodPhases is the informer the dashboard's pod counts read: every pod,
// reduced to its phase (dashboard.StripToPhase).
func newPodPhases(client kubernetes.Interface) cache.SharedIndexInformer {
	inf := informers.NewSharedInformerFactory(client, 0).Core().V1().Pods().Informer()
	if err := inf.SetTransform(dashboard.StripToPhase); err != nil {
		panic(err) // refused only once the informer runs; it has not
	}
	return inf
}

// apiServerHandlers are what skiff adds to the API server's port.
func (s *Server) apiServerHandlers() component.APIServerHandlers {
	h := component.APIServerHandlers{Public: map[string]http.Handler{}, Authenticated: map[string]http.Handler{}}
	if !s.cfg.DisableDashboard {
		h.Public[dashboard.Prefix] = dashboard.Handler()
		h.Authenticated[dashboard.PhasesPath] = dashboard.PhasesHandler(s.pods.GetIndexer(), s.pods.HasSynced, s.authorizer)
		if s.usage != nil {
			h.Authenticated[dashboard.UsagePrefix] = dashboard.UsageHandler(s.usage, s.authorizer)
		}
	}
	if s.fleetProxy != nil {
		h.Public[tunnel.Path] = s.fleetProxy.TunnelHandler()
		h.Mux = s.fleetProxy.SetMux
	}
	return h
}

// ensureDashboardRBAC lets every authenticated user reach the dashboard's
// paths; what each may read there is decided per request.
func ensureDashboardRBAC(ctx context.Context, client kubernetes.Interface) error {
	apply := metav1.ApplyOptions{FieldManager: dnsFieldManager, Force: true}
	labels := map[string]string{"app.kubernetes.io/managed-by": "skiff"}
	role := applyrbacv1.ClusterRole(dashboardAPIRole).WithLabels(labels).
		WithRules(applyrbacv1.PolicyRule().WithNonResourceURLs(dashboardAPIPaths).WithVerbs("get"))
	if _, err := client.RbacV1().ClusterRoles().Apply(ctx, role, apply); err != nil {
		return fmt.Errorf("apply ClusterRole %s: %w", dashboardAPIRole, err)
	}
	binding := applyrbacv1.ClusterRoleBinding(dashboardAPIRole).WithLabels(labels).
		WithRoleRef(applyrbacv1.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(dashboardAPIRole)).
		WithSubjects(applyrbacv1.Subject().WithKind(rbacv1.GroupKind).WithName(user.AllAuthenticated).WithAPIGroup(rbacv1.GroupName))
	if _, err := client.RbacV1().ClusterRoleBindings().Apply(ctx, binding, apply); err != nil {
		return fmt.Errorf("apply ClusterRoleBinding %s: %w", dashboardAPIRole, err)
	}
	return nil
}

// reviewAuthorizer asks the API server's authorizer (RBAC) with a
// SubjectAccessReview.
type reviewAuthorizer struct{ client kubernetes.Interface }

func (a reviewAuthorizer) Allowed(ctx context.Context, u user.Info, verb, group, resource, namespace string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.GetExtra() {
		extra[k] = v
	}
	review, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return review.Status.Allowed, nil
}

// metricsUsage reads metrics.k8s.io for the usage history, summing each
// pod's containers.
type metricsUsage struct{ client metricsclient.Interface }

func (m metricsUsage) NodeUsage(ctx context.Context) (map[string]dashboard.Usage, error) {
	l, err := m.client.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]dashboard.Usage, len(l.Items))
	for _, n := range l.Items {
		out[n.Name] = dashboard.Usage{CPU: n.Usage.Cpu().AsApproximateFloat64(), Memory: n.Usage.Memory().AsApproximateFloat64()}
	}
	return out, nil
}

func (m metricsUsage) PodUsage(ctx context.Context) (map[string]dashboard.Usage, error) {
	l, err := m.client.MetricsV1beta1().PodMetricses(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]dashboard.Usage, len(l.Items))
	for _, p := range l.Items {
		var u dashboard.Usage
		for _, c := range p.Containers {
			u.CPU += c.Usage.Cpu().AsApproximateFloat64()
			u.Memory += c.Usage.Memory().AsApproximateFloat64()
		}
		out[p.Namespace+"/"+p.Name] = u
	}
	return out, nil
}
