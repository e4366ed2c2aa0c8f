package server

import (
	"net"
	"strconv"
	"strings"

	"github.com/skiffdev/skiff/internal/component"
	"github.com/skiffdev/skiff/internal/controller/leader"
)

func (s *Server) apiServerArgs(etcd []string) ([]string, error) {
	f := s.files
	flags := map[string]string{
		"bind-address":                     s.cfg.BindAddress,
		"secure-port":                      strconv.Itoa(s.cfg.HTTPSPort),
		"etcd-servers":                     strings.Join(etcd, ","),
		"tls-cert-file":                    f.servingCert,
		"tls-private-key-file":             f.servingKey,
		"client-ca-file":                   f.caCert,
		"service-account-key-file":         f.saPub,
		"service-account-signing-key-file": f.saKey,
		"service-account-issuer":           "https://kubernetes.default.svc.cluster.local",
		"authorization-mode":               "Node,RBAC",
		"enable-admission-plugins":         "NodeRestriction",
		"enable-bootstrap-token-auth":      "true",
		"service-cluster-ip-range":         s.cfg.Cluster.ServiceCIDR,
		"kubelet-client-certificate":       f.kubeletClientCert,
		"kubelet-client-key":               f.kubeletClientKey,
		"authentication-config":            f.authnConfig,
		"allow-privileged":                 "true",
		"profiling":                        "false",
		"endpoint-reconciler-type":         "lease",
		"kubelet-preferred-address-types":  "InternalIP,ExternalIP,Hostname",
		// The aggregator proxies to extension API servers (metrics-server)
		// as the front proxy, naming the user in headers they trust, and
		// dials their endpoints directly (servers need no kube-proxy).
		"requestheader-client-ca-file":       f.frontProxyCA,
		"requestheader-allowed-names":        proxyClientPair,
		"requestheader-username-headers":     "X-Remote-User",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"proxy-client-cert-file":             f.proxyClientCert,
		"proxy-client-key-file":              f.proxyClientKey,
		"enable-aggregator-routing":          "true",
	}
	if s.cfg.AdvertiseAddress != "" {
		flags["advertise-address"] = s.cfg.AdvertiseAddress
	}
	if f.encryption {
		flags["encryption-provider-config"] = s.Paths.EncryptionConfig
		// `skiff secrets-encrypt rotate-keys` changes the file in place.
		flags["encryption-provider-config-automatic-reload"] = "true"
	}
	for k, v := range auditFlags(f.auditPolicy, s.Paths.AuditLog) {
		flags[k] = v
	}
	merged, err := component.Merge(flags, s.cfg.APIServerArgs)
	if err != nil {
		return nil, err
	}
	return component.Args(merged, nil), nil
}

// controllerManagerArgs are the controller manager's flags, serving its
// health port on securePort.
func (s *Server) controllerManagerArgs(securePort string) ([]string, error) {
	f := s.files
	flags := map[string]string{
		"kubeconfig":                       f.controllerManagerKubeconfig,
		"authentication-kubeconfig":        f.controllerManagerKubeconfig,
		"authorization-kubeconfig":         f.controllerManagerKubeconfig,
		"authentication-skip-lookup":       "true", // no front proxy: clients are the cluster CA's
		"client-ca-file":                   f.caCert,
		"bind-address":                     "127.0.0.1",
		"secure-port":                      securePort,
		"tls-cert-file":                    f.controllerManagerCert,
		"tls-private-key-file":             f.controllerManagerKey,
		"cluster-signing-cert-file":        f.caSigner,
		"cluster-signing-key-file":         f.caKey,
		"root-ca-file":                     f.caCert,
		"service-account-private-key-file": f.saKey,
		"use-service-account-credentials":  "true",
		"allocate-node-cidrs":              "true",
		"cluster-cidr":                     s.cfg.Cluster.ClusterCIDR,
		"service-cluster-ip-range":         s.cfg.Cluster.ServiceCIDR,
		"controllers":                      s.controllers(),
		"leader-elect":                     "true",
		"leader-elect-lease-duration":      leader.LeaseDuration.String(),
		"leader-elect-renew-deadline":      leader.RenewDeadline.String(),
		"leader-elect-retry-period":        leader.RetryPeriod.String(),
		"feature-gates":                    "ControllerManagerReleaseLeaderElectionLockOnExit=true",
		"kube-api-qps":                     strconv.Itoa(componentQPS),
		"kube-api-burst":                   strconv.Itoa(2 * componentQPS),
		"profiling":                        "false",
	}
	merged, err := component.Merge(flags, s.cfg.ControllerManagerArgs)
	if err != nil {
		return nil, err
	}
	return component.Args(merged, nil), nil
}

// componentQPS is the request rate the controller manager's, the
// scheduler's and the server's own clients may keep up (upstream's 20 and
// 50 would throttle a Deployment of thousands of replicas); their burst is
// twice that.
const componentQPS = 1000

// schedulerArgs are the scheduler's flags, serving its health port on
// securePort.
func (s *Server) schedulerArgs(securePort string) ([]string, error) {
	flags := map[string]string{
		"kubeconfig":                  s.files.schedulerKubeconfig,
		"authentication-kubeconfig":   s.files.schedulerKubeconfig,
		"authorization-kubeconfig":    s.files.schedulerKubeconfig,
		"authentication-skip-lookup":  "true",
		"client-ca-file":              s.files.caCert,
		"bind-address":                "127.0.0.1",
		"secure-port":                 securePort,
		"tls-cert-file":               s.files.schedulerCert,
		"tls-private-key-file":        s.files.schedulerKey,
		"leader-elect":                "true",
		"leader-elect-lease-duration": leader.LeaseDuration.String(),
		"leader-elect-renew-deadline": leader.RenewDeadline.String(),
		"leader-elect-retry-period":   leader.RetryPeriod.String(),
		"kube-api-qps":                strconv.Itoa(componentQPS),
		"kube-api-burst":              strconv.Itoa(2 * componentQPS),
		"profiling":                   "false",
	}
	merged, err := component.Merge(flags, s.cfg.SchedulerArgs)
	if err != nil {
		return nil, err
	}
	if _, ok := merged["config"]; !ok {
		if err := writeSchedulerConfig(s.files.schedulerConfig, merged); err != nil {
			return nil, err
		}
		merged["config"] = s.files.schedulerConfig
	}
	return component.Args(merged, nil), nil
}

// The ports kube-apiserver's componentstatuses probe (https, /healthz on
// 127.0.0.1), as upstream and kubeadm clusters serve them.
const (
	controllerManagerPort = 10257
	schedulerPort         = 10259
)

// securePort is the component's HTTPS port (healthz, metrics) on
// 127.0.0.1, or "0" (none) when another process, such as a second server on
// this machine, already has it: the component runs without it rather than
// not at all. --kube-*-arg secure-port=N chooses another.
func (s *Server) securePort(name string, port int) string {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		s.cfg.Log.Warn("port in use: the component serves no health endpoint", "component", name, "port", port, "err", err)
		return "0"
	}
	l.Close()
	return strconv.Itoa(port)
}

// workloadControllers are the controller manager's controllers a fleet
// upstream does not run: its workloads are templates for its clusters.
var workloadControllers = []string{"deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob",
	"horizontalpodautoscaling", "disruption", "ttl-after-finished"}

// controllers is the controller manager's --controllers.
func (s *Server) controllers() string {
	list := "*,bootstrapsigner,tokencleaner"
	if s.cfg.FleetUpstream {
		for _, c := range workloadControllers {
			list += ",-" + c
		}
	}
	return list
}
