package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/internal/component"
)

// defaultAuditPolicy records who did what without the routine traffic of
// the cluster's own parts: probes, discovery, lease renewals, events, and
// the reads of nodes and control-plane components are not logged; Secrets,
// ConfigMaps, token requests and CRDs (their schemas are large) are
// logged without their bodies; other
// reads with metadata only; changes by people and workloads with their
// request body, changes by nodes and controllers with metadata (their pod
// and node status writes are constant).
const defaultAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*", "/metrics"]
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: None
  resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
- level: None
  verbs: [get, list, watch]
  userGroups: ["system:nodes"]
- level: None
  verbs: [get, list, watch]
  users: ["system:kube-proxy", "system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]
- level: None
  verbs: [get, list, watch]
  userGroups: ["system:serviceaccounts:kube-system"]
- level: Metadata
  resources:
  - {group: "", resources: [secrets, configmaps, serviceaccounts/token]}
  - {group: authentication.k8s.io, resources: [tokenreviews]}
- level: Metadata
  resources: [{group: apiextensions.k8s.io, resources: [customresourcedefinitions]}]
- level: Metadata
  verbs: [get, list, watch]
- level: Metadata
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
- level: Metadata
  users: ["system:kube-proxy", "system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]
- level: Request
`

// Audit log rotation: a file is rotated at auditMaxSizeMB, compressed, and
// at most auditMaxBackups old files are kept (about 200 MB on disk at most).
const (
	auditMaxSizeMB  = 50
	auditMaxBackups = 4
	auditMaxAgeDays = 30
)

// prepareAudit checks a user's policy file (a bad one is a configuration
// error, not an API server crash loop) or writes skiff's default, and
// returns the policy to use.
func prepareAudit(cfg Config) (string, error) {
	paths := cfg.Paths()
	if err := os.MkdirAll(filepath.Dir(paths.AuditLog), 0o700); err != nil {
		return "", err
	}
	if cfg.AuditPolicyFile == "" {
		if err := os.WriteFile(paths.AuditPolicy, []byte(defaultAuditPolicy), 0o600); err != nil {
			return "", err
		}
		return paths.AuditPolicy, nil
	}
	data, err := os.ReadFile(cfg.AuditPolicyFile)
	if err != nil {
		return "", fmt.Errorf("%w: --audit-policy-file: %v", component.ErrConfig, err)
	}
	var p auditv1.Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return "", fmt.Errorf("%w: --audit-policy-file %s: %v", component.ErrConfig, cfg.AuditPolicyFile, err)
	}
	if p.Kind != "Policy" || p.APIVersion != auditv1.SchemeGroupVersion.String() {
		return "", fmt.Errorf("%w: --audit-policy-file %s: want apiVersion %s, kind Policy", component.ErrConfig, cfg.AuditPolicyFile, auditv1.SchemeGroupVersion)
	}
	return cfg.AuditPolicyFile, nil
}

// auditFlags are kube-apiserver's flags for the policy and the log.
func auditFlags(policy, log string) map[string]string {
	return map[string]string{
		"audit-policy-file":   policy,
		"audit-log-path":      log,
		"audit-log-format":    "json",
		"audit-log-maxsize":   strconv.Itoa(auditMaxSizeMB),
		"audit-log-maxbackup": strconv.Itoa(auditMaxBackups),
		"audit-log-maxage":    strconv.Itoa(auditMaxAgeDays),
		"audit-log-compress":  "true",
	}
}
