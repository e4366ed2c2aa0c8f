package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ErrConfig marks an invalid Config.
var ErrConfig = errors.New("invalid sim configuration")

// Config says which nodes a Sim registers and how their pods behave.
// Zero fields take the defaults named below.
type Config struct {
	// Nodes is how many nodes to register (required, at least 1).
	Nodes int
	// NamePrefix starts every node name; nodes are NamePrefix0, NamePrefix1, …
	// (default "sim-"). Two Sims against one cluster need different prefixes.
	NamePrefix string
	// CPU and Memory are each node's capacity and allocatable (default 32 and 256Gi).
	CPU, Memory resource.Quantity
	// MaxPods is each node's pod capacity (default 110).
	MaxPods int
	// Labels are added to every node, next to kubernetes.io/hostname,
	// kubernetes.io/os and kubernetes.io/arch.
	Labels map[string]string
	// Taints are set on every node at registration.
	Taints []corev1.Taint
	// StartDelay is how long after it is bound a pod becomes Running (default 0).
	StartDelay time.Duration
	// RunTime is how long a pod with restartPolicy Never or OnFailure runs
	// before it exits (default 1 s); the pod annotation
	// sim.skiff.dev/run-seconds overrides it.
	RunTime time.Duration
	// HeartbeatInterval is how often each node's Lease is renewed (default 10 s,
	// the kubelet's). Keep it well below the controller manager's
	// node-monitor-grace-period.
	HeartbeatInterval time.Duration
	// StatusInterval is how often each node's conditions get a fresh
	// heartbeat time (default 1 min).
	StatusInterval time.Duration
	// QPS and Burst limit the Sim's API client (default 500 and 1000).
	QPS   float32
	Burst int
	// Workers is how many goroutines process pods (default 32). Node
	// heartbeats get their own workers, one per 10 nodes (2 to 128), since
	// every node renews its Lease each HeartbeatInterval.
	Workers int
	// Log receives the Sim's logs (default slog.Default()).
	Log *slog.Logger
}

// Defaults of the Config fields the command line shows.
const (
	DefaultRunTime           = time.Second
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultQPS               = 500
	DefaultBurst             = 1000
)

const (
	defaultNamePrefix = "sim-"
	defaultMaxPods    = 110
	defaultStatus     = time.Minute
	defaultWorkers    = 32
)

// defaults returns cfg with every zero field filled, or an error naming
// the first invalid field.
func (cfg Config) defaults() (Config, error) {
	if cfg.Nodes < 1 {
		return cfg, fmt.Errorf("%w: Nodes must be at least 1, got %d", ErrConfig, cfg.Nodes)
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = defaultNamePrefix
	}
	if cfg.CPU.IsZero() {
		cfg.CPU = resource.MustParse("32")
	}
	if cfg.Memory.IsZero() {
		cfg.Memory = resource.MustParse("256Gi")
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = defaultMaxPods
	}
	if cfg.RunTime == 0 {
		cfg.RunTime = DefaultRunTime
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = defaultStatus
	}
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Workers == 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	switch {
	case cfg.CPU.Sign() < 0:
		return cfg, fmt.Errorf("%w: CPU must be positive, got %s", ErrConfig, cfg.CPU.String())
	case cfg.Memory.Sign() < 0:
		return cfg, fmt.Errorf("%w: Memory must be positive, got %s", ErrConfig, cfg.Memory.String())
	case cfg.MaxPods < 0:
		return cfg, fmt.Errorf("%w: MaxPods must be positive, got %d", ErrConfig, cfg.MaxPods)
	case cfg.StartDelay < 0 || cfg.RunTime < 0:
		return cfg, fmt.Errorf("%w: StartDelay and RunTime must not be negative", ErrConfig)
	case cfg.HeartbeatInterval < 0 || cfg.StatusInterval < 0:
		return cfg, fmt.Errorf("%w: HeartbeatInterval and StatusInterval must be positive", ErrConfig)
	case cfg.QPS < 0 || cfg.Burst < 0 || cfg.Workers < 0:
		return cfg, fmt.Errorf("%w: QPS, Burst and Workers must be positive", ErrConfig)
	}
	for i, t := range cfg.Taints {
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return cfg, fmt.Errorf("%w: Taints[%d] %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", ErrConfig, i, t.Key, t.Effect)
		}
	}
	return cfg, nil
}
