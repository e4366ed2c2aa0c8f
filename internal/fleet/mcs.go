package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/runtime/schema"
	mcscrd "sigs.k8s.io/mcs-api/config/crd"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// Multi-cluster services (the Kubernetes MCS API, sigs.k8s.io/mcs-api).
//
// A ServiceExport NS/NAME in a member cluster makes its agent publish, in
// the cluster's execution namespace on the upstream, an EndpointSlice named
// ExportSliceName(NS, NAME): the addresses other clusters reach the Service
// at (its load balancer's, or every Ready node's InternalIP with the node
// ports) and, in AnnotationServicePorts, the Service's ports. The upstream
// gathers the slices of one NS/NAME from every cluster and places a Work
// named ImportWorkName(NS, NAME) in every cluster: a ServiceImport NS/NAME,
// a Service DerivedServiceName(NAME) without selector, and one EndpointSlice
// per exporting cluster. The member's agent writes the derived Service's
// cluster IP into the ServiceImport's spec.ips, and the cluster DNS answers
// NAME.NS.svc.clusterset.local with it.
const (
	// ManagedByMCS is the endpointslice.kubernetes.io/managed-by of every
	// EndpointSlice the fleet writes (exports and imports alike).
	ManagedByMCS = "fleet.skiff.dev"
	// LabelServiceNamespace is, on an export's EndpointSlice on the
	// upstream, the namespace of the exported Service.
	LabelServiceNamespace = "fleet.skiff.dev/service-namespace"
	// AnnotationServicePorts is, on an export's EndpointSlice, the exported
	// Service's ports as JSON ([]mcsv1beta1.ServicePort); the slice's own
	// ports are where they are reached (node or load balancer ports).
	AnnotationServicePorts = "fleet.skiff.dev/service-ports"
	// AnnotationSessionAffinity is, on an export's EndpointSlice, the
	// exported Service's spec.sessionAffinity.
	AnnotationSessionAffinity = "fleet.skiff.dev/session-affinity"
	// ImportWorkPrefix starts the names of the Works that import services.
	ImportWorkPrefix = "mcs."
	// LabelExportOf marks the NodePort Service an agent creates to expose
	// an exported ClusterIP Service; its value is the exported Service's
	// name.
	LabelExportOf = "fleet.skiff.dev/export-of"
)

// Resources of the MCS API.
var (
	ServiceExports = schema.GroupVersionResource{Group: mcsv1beta1.GroupName, Version: "v1beta1", Resource: mcsv1beta1.ServiceExportPluralName}
	ServiceImports = schema.GroupVersionResource{Group: mcsv1beta1.GroupName, Version: "v1beta1", Resource: mcsv1beta1.ServiceImportPluralName}
)

// ExportSliceName names the EndpointSlice of the export of NS/NAME in its
// cluster's execution namespace: "NS.NAME" (neither holds a dot).
func ExportSliceName(ns, name string) string { return ns + "." + name }

// ImportWorkName names the Work that imports NS/NAME into a cluster.
func ImportWorkName(ns, name string) string { return ImportWorkPrefix + ns + "." + name }

// ParseImportWorkName is ImportWorkName's inverse.
func ParseImportWorkName(work string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(work, ImportWorkPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// DerivedServiceName names the Service behind a ServiceImport: "derived-NAME",
// or a hashed form when that is longer than a Service name may be.
func DerivedServiceName(name string) string { return boundedName("derived-", name) }

// ExportNodePortName names the NodePort Service that exposes an exported
// ClusterIP Service NAME on its cluster's nodes.
func ExportNodePortName(name string) string { return boundedName("export-", name) }

// boundedName is prefix+name, cut and suffixed with a hash of name when
// longer than a DNS label (63).
func boundedName(prefix, name string) string {
	s := prefix + name
	if len(s) <= 63 {
		return s
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(s[:52], "-") + "-" + hex.EncodeToString(sum[:])[:10]
}

// InstallMCSCRDs applies the ServiceExport and ServiceImport CRDs as the
// mcs-api module ships them.
func InstallMCSCRDs(ctx context.Context, client apiextensions.Interface) error {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, b := range [][]byte{mcscrd.ServiceExportCRD, mcscrd.ServiceImportCRD} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, crd); err != nil {
			return fmt.Errorf("mcs-api CRD: %w", err)
		}
		crd.APIVersion, crd.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
		crds = append(crds, crd)
	}
	return applyCRDs(ctx, client, crds)
}
