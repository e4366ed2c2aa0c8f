package component

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

// Proxy runs kube-proxy with the given flags until ctx ends. Its sync loop
// outlives the call (see below): run it once per process.
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
	// Upstream's run loop never returns once serving (the binary ends by
	// exiting): its informers stop with ctx, its rule-sync loop runs on
	// until the process exits. Return when ctx ends instead of waiting.
	errc := make(chan error, 1)
	go func() { errc <- opts.Run(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}
