package component

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

// Proxy runs kube-proxy with the given flags until ctx ends.
func Proxy(ctx context.Context, args []string) error {
	opts := app.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-proxy: %w: %v", ErrConfig, err)
	}
	if err := opts.Complete(fs); err != nil {
		return invalid("kube-proxy", []error{err})
	}
	if err := opts.Validate(); err != nil {
		return invalid("kube-proxy", []error{err})
	}
	// A restarted run registers its configz endpoint again.
	configz.Delete("kubeproxy.config.k8s.io")
	return opts.Run(ctx)
}
