package server

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	componentbasev1alpha1 "k8s.io/component-base/config/v1alpha1"
	schedulerv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/skiffdev/skiff/internal/component"
)

// schedulerFileFlags are the scheduler's flags that a configuration file
// replaces (the scheduler ignores them beside one).
var schedulerFileFlags = []string{"kubeconfig", "kube-api-content-type", "kube-api-qps", "kube-api-burst", "profiling"}

// writeSchedulerConfig writes the scheduler's configuration file to path,
// moving schedulerFileFlags from flags into it: its client's kubeconfig,
// content type and request rate, and profiling. The leader election flags
// stay flags: the scheduler applies them over the file. A
// --kube-scheduler-arg config=FILE replaces this file whole. Scheduling
// settings are upstream's defaults (docs/perf.md has what a lower
// percentageOfNodesToScore buys) but for schedulerParallelism.
func writeSchedulerConfig(path string, flags map[string]string) error {
	cfg := schedulerv1.KubeSchedulerConfiguration{}
	cfg.APIVersion, cfg.Kind = schedulerv1.SchemeGroupVersion.String(), "KubeSchedulerConfiguration"
	cfg.Parallelism = ptr.To(schedulerParallelism())
	cfg.ClientConnection = componentbasev1alpha1.ClientConnectionConfiguration{Kubeconfig: flags["kubeconfig"], ContentType: flags["kube-api-content-type"]}
	cc := &cfg.ClientConnection
	for _, p := range []struct {
		key   string
		parse func(string) error
	}{
		{"kube-api-qps", func(v string) error {
			f, err := strconv.ParseFloat(v, 32)
			cc.QPS = float32(f)
			return err
		}},
		{"kube-api-burst", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			cc.Burst = int32(n)
			return err
		}},
		{"profiling", func(v string) error {
			b, err := strconv.ParseBool(v)
			cfg.EnableProfiling = ptr.To(b)
			return err
		}},
	} {
		if v, ok := flags[p.key]; ok {
			if err := p.parse(v); err != nil {
				return fmt.Errorf("%w: --kube-scheduler-arg %s=%s: %v", component.ErrConfig, p.key, v, err)
			}
		}
	}
	for _, key := range schedulerFileFlags {
		delete(flags, key)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("scheduler configuration: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// schedulerParallelism is how many goroutines the scheduler filters and
// scores nodes with: one per CPU the process may use, at most upstream's
// default of 16. The work is CPU-bound and the scheduler shares its
// process, and usually its machine, with the API server and etcd, so
// workers beyond the CPUs only add hand-offs: on two CPUs, 2 instead of 16
// took a third off the scheduler's time per pod at 1,000 nodes
// (docs/perf.md, "the scheduler's parallelism"). Which nodes a pod may go
// to, and how they are scored, does not depend on it.
func schedulerParallelism() int32 {
	return int32(min(16, runtime.GOMAXPROCS(0)))
}
