package component

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/kubernetes/cmd/kubelet/app"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfigvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
)

// Kubelet runs the kubelet. configure sets skiff's configuration on the
// upstream defaults; args (kubelet flags, as --kubelet-arg gives them) are
// applied on top. The kubelet does not stop all of its goroutines when ctx
// ends, so it is started once per process.
func Kubelet(ctx context.Context, configure func(*options.KubeletServer), args []string) error {
	s, err := options.NewKubeletServer()
	if err != nil {
		return err
	}
	configure(s)
	fs := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	s.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kubelet: %w: %v", ErrConfig, err)
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(s.KubeletConfiguration.FeatureGates); err != nil {
		return invalid("kubelet", []error{err})
	}
	if err := options.ValidateKubeletFlags(&s.KubeletFlags); err != nil {
		return invalid("kubelet", []error{err})
	}
	if err := kubeletconfigvalidation.ValidateKubeletConfiguration(&s.KubeletConfiguration, utilfeature.DefaultFeatureGate); err != nil {
		return invalid("kubelet", []error{err})
	}
	deps, err := app.UnsecuredDependencies(ctx, s, utilfeature.DefaultFeatureGate)
	if err != nil {
		return err
	}
	var csiState *kubeletCSI
	if deps.VolumePlugins, csiState = newKubeletCSI(deps.VolumePlugins); csiState != nil {
		go csiState.keep(ctx)
	}
	return app.Run(ctx, s, deps, utilfeature.DefaultFeatureGate)
}
