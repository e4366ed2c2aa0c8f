package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/agent/apilb"
	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/kubeconfig"
	"github.com/skiffdev/skiff/internal/supervise"
)

// DefaultLBServerPort is the default port of the node's load balancer over
// the API servers (k3s's).
const DefaultLBServerPort = 6444

// lbStateFile, in the data dir, keeps the API servers the load balancer
// learned, for a start while Server is down.
const lbStateFile = "lb-servers.json"

// configureLB applies the load balancer's defaults and checks its
// settings: the node's kubeconfigs will point at it.
func (a *Agent) configureLB() error {
	cfg := &a.cfg
	if cfg.LBServerPort == 0 {
		cfg.LBServerPort = DefaultLBServerPort
	}
	if cfg.LBServerPort < 0 || cfg.LBServerPort > 65535 {
		return fmt.Errorf("--lb-server-port %d is not a port", cfg.LBServerPort)
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("--server %q: expected https://HOST:PORT", cfg.Server)
	}
	a.defaultServer = u.Host
	if u.Port() == "" {
		a.defaultServer = net.JoinHostPort(u.Hostname(), "443")
	}
	a.apiURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.LBServerPort))
	return nil
}

// lbComponent runs the load balancer, ready once it listens.
func (a *Agent) lbComponent() supervise.Component {
	ready := make(chan struct{})
	return supervise.Component{
		Name: "apiserver-lb",
		Run: func(ctx context.Context) error {
			lb, err := apilb.New(apilb.Config{
				Addr:          net.JoinHostPort("127.0.0.1", strconv.Itoa(a.cfg.LBServerPort)),
				DefaultServer: a.defaultServer,
				StateFile:     filepath.Join(a.cfg.DataDir, lbStateFile),
				Log:           a.cfg.Log.With("component", "apiserver-lb"),
			})
			if errors.Is(err, apilb.ErrPortInUse) {
				return fmt.Errorf("%w: --lb-server-port %d: %v", component.ErrConfig, a.cfg.LBServerPort, err)
			}
			if err != nil {
				return err
			}
			a.lb = lb
			close(ready)
			return lb.Run(ctx)
		},
		Ready: supervise.Closed(ready),
	}
}

// watchAPIServers keeps the load balancer's list the API servers of the
// kubernetes Service's EndpointSlices (kube-apiserver's lease endpoint
// reconciler publishes one endpoint per live API server), with the node's
// credentials (system:node-proxier lets nodes watch EndpointSlices).
func (a *Agent) watchAPIServers(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(a.nodeClient, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes"
		}))
	slicesInformer := factory.Discovery().V1().EndpointSlices()
	lister := slicesInformer.Lister()
	update := func() {
		list, err := lister.List(labels.Everything())
		if err != nil {
			return
		}
		// An API server answered, so one is alive: no servers is a passing
		// state of the endpoints, not news.
		if servers := apiServers(list); len(servers) > 0 {
			a.lb.SetServers(spread(servers, a.cfg.NodeName))
		}
	}
	_, err := slicesInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { update() },
		UpdateFunc: func(any, any) { update() },
		DeleteFunc: func(any) { update() },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// apiServers lists, sorted, host:port for every ready endpoint of the
// kubernetes Service's EndpointSlices, on their port named https.
func apiServers(list []*discoveryv1.EndpointSlice) []string {
	var servers []string
	for _, s := range list {
		i := slices.IndexFunc(s.Ports, func(p discoveryv1.EndpointPort) bool {
			return p.Name != nil && *p.Name == "https" && p.Port != nil
		})
		if i < 0 {
			continue
		}
		port := strconv.Itoa(int(*s.Ports[i].Port))
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue // nil is ready, as the API says
			}
			for _, addr := range e.Addresses {
				servers = append(servers, net.JoinHostPort(addr, port))
			}
		}
	}
	slices.Sort(servers)
	return slices.Compact(servers)
}

// pointKubeletAt makes the kubelet's kubeconfig, if an earlier start left
// one, use server: a node that joined before the load balancer existed,
// or whose load balancer port changed.
func (a *Agent) pointKubeletAt(server string) error {
	path := a.kubeletKubeconfig()
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	changed := false
	for _, c := range cfg.Clusters {
		if c.Server != server {
			c.Server, changed = server, true
		}
	}
	if !changed {
		return nil
	}
	if err := kubeconfig.Save(path, cfg); err != nil {
		return err
	}
	a.cfg.Log.Info("the kubelet's kubeconfig now points at the API server", "kubeconfig", path, "server", server)
	return nil
}

// spread rotates the sorted list of servers by a hash of the node's name:
// each node keeps one order, and when the server it prefers dies, the
// nodes fail over to different servers instead of all to the first.
func spread(servers []string, node string) []string {
	if len(servers) == 0 {
		return servers
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	k := int(h.Sum32() % uint32(len(servers)))
	return append(slices.Clone(servers[k:]), servers[:k]...)
}
