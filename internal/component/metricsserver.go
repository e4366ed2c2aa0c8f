package component

import (
	"context"
	"maps"

	"k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"sigs.k8s.io/metrics-server/cmd/metrics-server/app/options"
)

// MetricsServer runs metrics-server (sigs.k8s.io/metrics-server), which
// scrapes the kubelets' /metrics/resource and serves metrics.k8s.io through
// the API server's aggregator, with the given flags until ctx ends.
func MetricsServer(ctx context.Context, args []string) error {
	o := options.NewOptions()
	if err := parse("metrics-server", o.Flags(), args); err != nil {
		return err
	}
	// Options.Validate would also apply its logging options, which take
	// klog over for the whole process (skiff filters klog's lines); the
	// other checks are these (the scrape interval is skiff's).
	errs := append(o.KubeletClient.Validate(), o.GenericServerRunOptions.Validate()...)
	if err := invalid("metrics-server", errs); err != nil {
		return err
	}
	config, err := o.ServerConfig()
	if err != nil {
		return invalid("metrics-server", []error{err})
	}
	// metrics-server v0.8.0's generated OpenAPI definitions are keyed by Go
	// package path; the API machinery of v0.37 looks types up by their
	// OpenAPI model names (io.k8s.…) as well.
	v2, v3 := config.Apiserver.OpenAPIConfig, config.Apiserver.OpenAPIV3Config
	v2.GetDefinitions = withModelNames(v2.GetDefinitions)
	v3.GetDefinitions = withModelNames(v3.GetDefinitions)
	addModelNames(v2.Definitions)
	addModelNames(v3.Definitions)
	server, err := config.Complete()
	if err != nil {
		return invalid("metrics-server", []error{err})
	}
	return server.RunUntil(ctx.Done())
}

// addModelNames adds each definition under its REST-friendly model name.
func addModelNames(defs map[string]common.OpenAPIDefinition) {
	added := make(map[string]common.OpenAPIDefinition, len(defs))
	for name, def := range defs {
		if model := openapiutil.ToRESTFriendlyName(name); model != name {
			added[model] = def
		}
	}
	maps.Copy(defs, added)
}

// withModelNames adds each definition of get under its REST-friendly model
// name (k8s.io/metrics/pkg/….NodeMetrics as io.k8s.metrics.pkg.….NodeMetrics).
func withModelNames(get common.GetOpenAPIDefinitions) common.GetOpenAPIDefinitions {
	return func(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
		defs := get(ref)
		addModelNames(defs)
		return defs
	}
}
