package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/sim"
)

func newSimCommand() *cobra.Command {
	var (
		cfg         sim.Config
		kubeconfig  string
		cpu, memory string
		labels      []string
		taints      []string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run simulated nodes that register with a cluster and play out the pods bound to them",
		Long: `sim registers --nodes fake Nodes and acts as their kubelets through the API:
Leases, node status, and pods that go Running (and, for restartPolicy Never or
OnFailure, Succeeded or Failed after --run-time). No containers run. The pod
annotations sim.skiff.dev/exit-code and sim.skiff.dev/run-seconds override the
exit code and run time. When sim stops, its Nodes stay and go NotReady.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.CPU, err = resource.ParseQuantity(cpu); err != nil {
				return fmt.Errorf("--cpu %q: %w", cpu, err)
			}
			if cfg.Memory, err = resource.ParseQuantity(memory); err != nil {
				return fmt.Errorf("--memory %q: %w", memory, err)
			}
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cfg.Taints, err = parseTaints(taints); err != nil {
				return err
			}
			if kubeconfig == "" {
				kubeconfig = os.Getenv("KUBECONFIG")
			}
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			cfg.Log = newLogger("skiff-sim")
			s, err := sim.New(cfg, rc)
			if err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			go func() {
				select {
				case <-s.Registered():
					cfg.Log.Info("all nodes registered", "nodes", cfg.Nodes)
				case <-ctx.Done():
				}
			}()
			return s.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to join (default $KUBECONFIG)")
	f.IntVar(&cfg.Nodes, "nodes", 1, "number of nodes")
	f.StringVar(&cfg.NamePrefix, "name-prefix", "sim-", "node names are this prefix and an index")
	f.StringVar(&cpu, "cpu", "32", "CPU capacity of each node")
	f.StringVar(&memory, "memory", "256Gi", "memory capacity of each node")
	f.IntVar(&cfg.MaxPods, "max-pods", 110, "pod capacity of each node")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringArrayVar(&taints, "taint", nil, "node taint key[=value]:Effect (repeatable)")
	f.DurationVar(&cfg.StartDelay, "start-delay", 0, "how long a bound pod stays Pending before it runs")
	f.DurationVar(&cfg.RunTime, "run-time", sim.DefaultRunTime, "how long pods with restartPolicy Never or OnFailure run")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", sim.DefaultHeartbeatInterval, "how often node Leases are renewed")
	f.Float32Var(&cfg.QPS, "kube-api-qps", sim.DefaultQPS, "API requests per second")
	f.IntVar(&cfg.Burst, "kube-api-burst", sim.DefaultBurst, "API request burst")
	return cmd
}

// parseLabels turns key=value strings into a map.
func parseLabels(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", l)
		}
		out[k] = v
	}
	return out, nil
}

// parseTaints turns key[=value]:Effect strings into taints, as kubectl taint spells them.
func parseTaints(list []string) ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, t := range list {
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("--taint %q: want key[=value]:Effect", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--taint %q: empty key", t)
		}
		switch e := corev1.TaintEffect(effect); e {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
			out = append(out, corev1.Taint{Key: k, Value: v, Effect: e})
		default:
			return nil, fmt.Errorf("--taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", t)
		}
	}
	return out, nil
}
