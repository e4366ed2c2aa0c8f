// Package component runs upstream Kubernetes components (kube-apiserver,
// kube-controller-manager, kube-scheduler) inside skiff's process, configured
// through the same flags their own binaries take. skiff does not fork their
// code: it imports it, so behaviour, defaults, messages and API semantics are
// upstream's own (docs/adr/0001-api-server.md).
//
// Each Run function returns when ctx ends or when the component stops by
// itself (a lost leader lease, a start-up failure); internal/supervise
// restarts it.
package component

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
)

// ErrConfig marks errors in a component's flags: restarting cannot fix them.
var ErrConfig = errors.New("invalid configuration")

func parse(name string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrConfig, err)
	}
	return nil
}

func invalid(name string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: %v", name, ErrConfig, errors.Join(errs...))
}

// Args renders a flag map as --key=value arguments, in sorted order so logs are stable.
func Args(flags map[string]string, extra []string) []string {
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys)+len(extra))
	for _, k := range keys {
		out = append(out, "--"+k+"="+flags[k])
	}
	return append(out, extra...)
}

// Merge applies user overrides ("key=value" as given to --kube-apiserver-arg and
// friends) on top of skiff's defaults.
func Merge(defaults map[string]string, overrides []string) (map[string]string, error) {
	out := make(map[string]string, len(defaults)+len(overrides))
	for k, v := range defaults {
		out[k] = v
	}
	for _, o := range overrides {
		k, v, err := SplitArg(o)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		out[k] = v
	}
	return out, nil
}

// SplitArg splits one user override, "key=value" with or without leading
// dashes.
func SplitArg(o string) (key, value string, err error) {
	k, v, ok := strings.Cut(strings.TrimLeft(o, "-"), "=")
	if !ok {
		return "", "", fmt.Errorf("%q is not key=value", o)
	}
	return k, v, nil
}
