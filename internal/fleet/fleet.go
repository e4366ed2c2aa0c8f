// Package fleet holds what the upstream's controllers (internal/fleet/upstream)
// and the downstream's agent (internal/fleet/agent) share: the fleet API's
// CRDs, the names of the objects they meet at, and the join token.
//
// An upstream skiff (`skiff server --fleet-upstream`) serves the fleet API;
// each downstream cluster runs an agent that dials out to it, registers a
// Cluster, heartbeats through a Lease in its execution namespace
// (fleet-cluster-NAME), applies the Works the upstream renders there and
// reports their state back. The upstream never holds a downstream's
// credentials. docs/fleet.md is the user's guide.
package fleet

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/internal/crds"
)

// Names shared by the upstream and the agents.
const (
	// FieldManager is the field manager of everything the fleet writes.
	FieldManager = "skiff-fleet"
	// AgentAccount is the service account, in a cluster's execution
	// namespace on the upstream, whose tokens its agent uses.
	AgentAccount = "agent"
	// HeartbeatLease is the Lease, in the execution namespace, the agent
	// renews.
	HeartbeatLease = "heartbeat"
	// DefaultLeaseDurationSeconds is the heartbeat Lease's duration until
	// the upstream sets its own grace period there; agents renew at a
	// quarter of it.
	DefaultLeaseDurationSeconds = 40
	// AgentSecret is the Secret in a downstream's kube-system that holds
	// its agent's upstream URL, CA, token and cluster name (written by
	// `skiff fleet join`).
	AgentSecret = "skiff-fleet-agent"

	// LabelCluster names the cluster on its execution namespace.
	LabelCluster = "fleet.skiff.dev/cluster"
	// LabelBindingUID marks the Works of a binding.
	LabelBindingUID = "fleet.skiff.dev/binding-uid"
	// AnnotationBinding is "KIND/NAMESPACE/NAME" of a Work's binding.
	AnnotationBinding = "fleet.skiff.dev/binding"
	// AnnotationTemplateGeneration is, on a Work, the generation of the
	// upstream resource it was rendered from.
	AnnotationTemplateGeneration = "fleet.skiff.dev/template-generation"
	// LabelManaged marks the objects an agent applied in its downstream.
	LabelManaged = "fleet.skiff.dev/managed"
	// AnnotationWork is "NAMESPACE/NAME" of the Work that applied a
	// downstream object.
	AnnotationWork = "fleet.skiff.dev/work"
	// AnnotationPolicy names, on a propagated template, the policy that
	// placed it ("PropagationPolicy/NS/NAME" or "ClusterPropagationPolicy/NAME").
	AnnotationPolicy = "fleet.skiff.dev/policy"

	// FinalizerAgent keeps a Work until its agent deleted its objects.
	FinalizerAgent = "fleet.skiff.dev/agent"
	// FinalizerWorks keeps a binding until its Works are deleted.
	FinalizerWorks = "fleet.skiff.dev/works"
	// FinalizerCluster keeps a Cluster until its execution namespace and
	// access are cleaned up.
	FinalizerCluster = "fleet.skiff.dev/cluster"
)

// Unwrap is an informer's deletion event's object: the object itself, or
// the last state an informer that missed the deletion knew.
func Unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// ExecutionNamespace is the namespace on the upstream where cluster's Works
// and heartbeat Lease live.
func ExecutionNamespace(cluster string) string { return "fleet-cluster-" + cluster }

// clusterName is what a Cluster may be called: a DNS label, so that its
// execution namespace is a valid name.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,47}[a-z0-9])?$`)

// ValidateClusterName refuses names that cannot name a cluster.
func ValidateClusterName(name string) error {
	if !clusterName.MatchString(name) {
		return fmt.Errorf("cluster name %q: want at most 49 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs decodes the fleet API's CRDs.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return crds.Decode(crdFiles, "crds/*.yaml")
}

// InstallCRDs applies the fleet API's CRDs (server-side, so an upgrade
// updates them) and waits until the API server serves them.
func InstallCRDs(ctx context.Context, client apiextensions.Interface) error {
	all, err := CRDs()
	if err != nil {
		return err
	}
	return applyCRDs(ctx, client, all)
}

// applyCRDs applies CRDs as the fleet's field manager and waits until they
// are served.
func applyCRDs(ctx context.Context, client apiextensions.Interface, all []*apiextensionsv1.CustomResourceDefinition) error {
	if err := crds.Apply(ctx, client, FieldManager, all); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return nil
}

// tokenPrefix starts a fleet join token: "SKF1<CA hash>::<bearer>".
const tokenPrefix = "SKF1"

var bearer = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Token is a fleet join token: the hash of the upstream's CA certificate
// (sha256 of its DER, hex), so that the agent can trust the upstream before
// it sends the bearer, and the bearer: a short-lived token of the cluster's
// agent service account.
type Token struct {
	CAHash string
	Bearer string
}

// String is the token in its file format.
func (t Token) String() string { return tokenPrefix + t.CAHash + "::" + t.Bearer }

// ParseToken reads a token file's content.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, errors.New("fleet join token: does not start with " + tokenPrefix + " (create one on the upstream with `skiff fleet token create NAME`)")
	}
	hash, b, ok := strings.Cut(rest, "::")
	if !ok || len(hash) != 64 || strings.Trim(strings.ToLower(hash), "0123456789abcdef") != "" {
		return Token{}, errors.New("fleet join token: want SKF1<64 hex digits>::<token>")
	}
	if !bearer.MatchString(b) {
		return Token{}, errors.New("fleet join token: the token part has characters a bearer token cannot have")
	}
	return Token{CAHash: strings.ToLower(hash), Bearer: b}, nil
}
