package server

import (
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"

	"github.com/skiffdev/skiff/internal/component"
)

// TestSchedulerArgs: the scheduler gets a configuration file its own loader
// accepts, holding skiff's client settings and the user's overrides of the
// flags such a file replaces; a user's config=FILE is passed as given, with
// the flags left alone.
func TestSchedulerArgs(t *testing.T) {
	dir := t.TempDir()
	s := &Server{files: files{schedulerKubeconfig: "/data/tls/scheduler.kubeconfig", schedulerConfig: filepath.Join(dir, schedulerConfigFile)}}
	s.cfg.SchedulerArgs = []string{"kube-api-burst=77", "--v=2"}
	args, err := s.schedulerArgs("10259")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"--kubeconfig=", "--kube-api-qps=", "--kube-api-burst=", "--profiling="} {
		if i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, gone) }); i >= 0 {
			t.Errorf("args pass %s beside --config, which makes the scheduler ignore it", args[i])
		}
	}
	for _, want := range []string{"--config=" + s.files.schedulerConfig, "--v=2", "--leader-elect=true", "--secure-port=10259"} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %v", want, args)
		}
	}
	cfg, err := scheduleroptions.LoadConfigFromFile(klog.Background(), s.files.schedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatal(err)
	}
	cc := cfg.ClientConnection
	if cc.Kubeconfig != s.files.schedulerKubeconfig || cc.QPS != componentQPS || cc.Burst != 77 || cc.ContentType != "application/vnd.kubernetes.protobuf" {
		t.Errorf("client connection %+v, want kubeconfig %s, QPS %d, burst 77 (the user's), protobuf", cc, s.files.schedulerKubeconfig, componentQPS)
	}
	if cfg.EnableProfiling || len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName != "default-scheduler" {
		t.Errorf("profiling %v, profiles %+v; want off and upstream's default profile", cfg.EnableProfiling, cfg.Profiles)
	}
	if want := min(16, int32(runtime.GOMAXPROCS(0))); cfg.Parallelism != want {
		t.Errorf("parallelism %d, want %d (the CPUs, at most upstream's 16)", cfg.Parallelism, want)
	}

	s.cfg.SchedulerArgs = []string{"config=/etc/mine.yaml", "kube-api-qps=5"}
	if args, err = s.schedulerArgs("0"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--config=/etc/mine.yaml", "--kube-api-qps=5", "--kubeconfig=" + s.files.schedulerKubeconfig} {
		if !slices.Contains(args, want) {
			t.Errorf("with the user's config, args lack %s: %v", want, args)
		}
	}

	s.cfg.SchedulerArgs = []string{"kube-api-qps=fast"}
	if _, err = s.schedulerArgs("0"); !errors.Is(err, component.ErrConfig) || !strings.Contains(err.Error(), "kube-api-qps=fast") {
		t.Errorf("kube-api-qps=fast: err %v, want a configuration error naming it", err)
	}
}
