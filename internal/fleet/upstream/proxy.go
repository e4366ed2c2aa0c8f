package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/internal/fleet"
	v1alpha1 "github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/fleet/tunnel"
)

// ProxyPrefix is where cluster NAME's API is reached through the upstream:
// ProxyPrefix+NAME+"/proxy/…" (Karmada's cluster proxy path, in the fleet
// group). The API server authorizes it as the subresource clusters/proxy
// of Cluster NAME, so RBAC decides who may reach which cluster.
const ProxyPrefix = "/apis/" + v1alpha1.Group + "/" + v1alpha1.Version + "/clusters/"

// Proxy serves, on every upstream server, the agents' tunnels and the
// proxy path to each cluster through its tunnel.
type Proxy struct {
	kube dynamic.Interface
	auth kubernetes.Interface
	log  *slog.Logger
	reg  *tunnel.Registry

	mu         sync.Mutex
	mux        *mux.PathRecorderMux // guarded by mu
	registered map[string]bool      // guarded by mu
	ctx        context.Context
}

// NewProxy returns the proxy; SetMux and Run complete it.
func NewProxy(dyn dynamic.Interface, kube kubernetes.Interface, log *slog.Logger) *Proxy {
	return &Proxy{kube: dyn, auth: kube, log: log, reg: tunnel.NewRegistry(), registered: map[string]bool{}, ctx: context.Background()}
}

// SetMux is given the API server's mux (inside its handler chain), where
// each cluster's proxy path is registered while the cluster exists.
func (p *Proxy) SetMux(m *mux.PathRecorderMux) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mux = m
}

// agentUser is the user name of a cluster's agent.
var agentUser = regexp.MustCompile(`^system:serviceaccount:fleet-cluster-([a-z0-9-]+):` + fleet.AgentAccount + `$`)

// TunnelHandler accepts agents' tunnels (tunnel.Path, ahead of the API
// server's chain): the bearer token must be a cluster's agent's, checked
// with a TokenReview.
func (p *Proxy) TunnelHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "a cluster's agent token is required", http.StatusUnauthorized)
			return
		}
		tr, err := p.auth.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			http.Error(w, "token review: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		m := agentUser.FindStringSubmatch(tr.Status.User.Username)
		if !tr.Status.Authenticated || m == nil {
			http.Error(w, "not a fleet cluster's agent", http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		ctx := p.ctx
		p.mu.Unlock()
		if err := p.reg.Accept(ctx, w, r, m[1]); err != nil {
			p.log.Warn("fleet: a cluster's tunnel failed", "cluster", m[1], "err", err)
			return
		}
		p.log.Info("fleet: cluster connected its tunnel", "cluster", m[1])
	})
}

// Run keeps a proxy path registered for each Cluster until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	inf := dynamicinformer.NewDynamicSharedInformerFactory(p.kube, 0)
	clusters := inf.ForResource(v1alpha1.Clusters).Informer()
	if _, err := clusters.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { p.register(obj.(*unstructured.Unstructured).GetName()) },
		DeleteFunc: func(obj any) {
			obj = fleet.Unwrap(obj)
			if u, ok := obj.(*unstructured.Unstructured); ok {
				p.unregister(u.GetName())
			}
		},
	}); err != nil {
		return err
	}
	inf.Start(ctx.Done())
	<-ctx.Done()
	inf.Shutdown()
	return nil
}

func (p *Proxy) register(cluster string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mux == nil || p.registered[cluster] {
		return
	}
	p.registered[cluster] = true
	h := p.handler(cluster)
	p.mux.UnlistedHandle(ProxyPrefix+cluster+"/proxy", h)
	p.mux.UnlistedHandlePrefix(ProxyPrefix+cluster+"/proxy/", h)
}

func (p *Proxy) unregister(cluster string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mux == nil || !p.registered[cluster] {
		return
	}
	delete(p.registered, cluster)
	p.mux.Unregister(ProxyPrefix + cluster + "/proxy")
	p.mux.Unregister(ProxyPrefix + cluster + "/proxy/")
}

// handler forwards a request, already authenticated and authorized as
// clusters/proxy of cluster, through its tunnel, as its user: the
// downstream's RBAC then decides what that user may do there.
func (p *Proxy) handler(cluster string) http.Handler {
	prefix := ProxyPrefix + cluster + "/proxy"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(err error) {
			responsewriters.ErrorNegotiated(err, scheme.Codecs, schema.GroupVersion{Version: "v1"}, w, r)
		}
		u, ok := request.UserFrom(r.Context())
		if !ok {
			fail(apierrors.NewUnauthorized("no user"))
			return
		}
		rt, ok := p.reg.Transport(cluster)
		if !ok {
			fail(apierrors.NewServiceUnavailable(fmt.Sprintf("cluster %s has no tunnel to this server (its agent is not connected)", cluster)))
			return
		}
		rewrite := func(out *http.Request) {
			path := strings.TrimPrefix(r.URL.Path, prefix)
			if path == "" {
				path = "/"
			}
			out.URL = &url.URL{Scheme: "https", Host: cluster, Path: path, RawQuery: r.URL.RawQuery}
			out.Host = cluster
			for k := range out.Header {
				if k == "Authorization" || strings.HasPrefix(k, "Impersonate-") {
					out.Header.Del(k)
				}
			}
			out.Header.Set("Impersonate-User", u.GetName())
			if uid := u.GetUID(); uid != "" {
				out.Header.Set("Impersonate-Uid", uid)
			}
			for _, g := range u.GetGroups() {
				out.Header.Add("Impersonate-Group", g)
			}
			for k, vs := range u.GetExtra() {
				for _, v := range vs {
					out.Header.Add("Impersonate-Extra-"+url.PathEscape(k), v)
				}
			}
		}
		if tunnel.IsUpgrade(r) {
			// exec, attach, port-forward: a stream through the tunnel.
			out := r.Clone(r.Context())
			out.RequestURI = ""
			rewrite(out)
			if err := tunnel.ProxyUpgrade(w, r, rt, out); err != nil {
				fail(apierrors.NewServiceUnavailable(fmt.Sprintf("cluster %s: %v", cluster, err)))
			}
			return
		}
		rp := &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { rewrite(pr.Out) },
			Transport:     rt,
			FlushInterval: -1,
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				fail(apierrors.NewServiceUnavailable(fmt.Sprintf("cluster %s: %v", cluster, err)))
			},
		}
		rp.ServeHTTP(w, r)
	})
}
