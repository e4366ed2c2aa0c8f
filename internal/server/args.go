package server

import (
	"strconv"
	"strings"

	"github.com/skiffdev/skiff/internal/component"
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
		"service-cluster-ip-range":         s.cfg.ServiceCIDR,
		"kubelet-client-certificate":       f.kubeletClientCert,
		"kubelet-client-key":               f.kubeletClientKey,
		"authentication-config":            f.authnConfig,
		"allow-privileged":                 "true",
		"profiling":                        "false",
		"endpoint-reconciler-type":         "lease",
		"kubelet-preferred-address-types":  "InternalIP,ExternalIP,Hostname",
	}
	if s.cfg.AdvertiseAddress != "" {
		flags["advertise-address"] = s.cfg.AdvertiseAddress
	}
	merged, err := component.Merge(flags, s.cfg.APIServerArgs)
	if err != nil {
		return nil, err
	}
	return component.Args(merged, nil), nil
}

func (s *Server) controllerManagerArgs() ([]string, error) {
	f := s.files
	flags := map[string]string{
		"kubeconfig":                       f.controllerManagerKubeconfig,
		"authentication-kubeconfig":        f.controllerManagerKubeconfig,
		"authorization-kubeconfig":         f.controllerManagerKubeconfig,
		"secure-port":                      "0",
		"cluster-signing-cert-file":        f.caCert,
		"cluster-signing-key-file":         f.caKey,
		"root-ca-file":                     f.caCert,
		"service-account-private-key-file": f.saKey,
		"use-service-account-credentials":  "true",
		"allocate-node-cidrs":              "true",
		"cluster-cidr":                     s.cfg.ClusterCIDR,
		"service-cluster-ip-range":         s.cfg.ServiceCIDR,
		"controllers":                      "*,bootstrapsigner,tokencleaner",
		"leader-elect":                     "true",
		"feature-gates":                    "ControllerManagerReleaseLeaderElectionLockOnExit=true",
		"kube-api-qps":                     "1000",
		"kube-api-burst":                   "2000",
		"profiling":                        "false",
	}
	merged, err := component.Merge(flags, s.cfg.ControllerManagerArgs)
	if err != nil {
		return nil, err
	}
	return component.Args(merged, nil), nil
}

func (s *Server) schedulerArgs() ([]string, error) {
	flags := map[string]string{
		"kubeconfig":     s.files.schedulerKubeconfig,
		"secure-port":    "0",
		"leader-elect":   "true",
		"kube-api-qps":   "1000",
		"kube-api-burst": "2000",
		"profiling":      "false",
	}
	merged, err := component.Merge(flags, s.cfg.SchedulerArgs)
	if err != nil {
		return nil, err
	}
	return component.Args(merged, nil), nil
}
