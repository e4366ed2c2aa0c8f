package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// teardown stops the server and removes what its agent leaves running on
// purpose (containerd, the pods' containers, mounts under the data dir).
//
// `skiff agent teardown` also deletes the skiff0 bridge and the skiff and
// kube-proxy nftables tables, which every skiff agent on the machine
// shares: run while another developer's agent is up, it cuts that agent's
// pods off the network. So when other skiff containerds run, the benchmark
// passes --keep-shared, and says so.
func (b *bench) teardown() error {
	if b.server == nil {
		return nil
	}
	var errs []error
	if err := b.server.Stop(); err != nil {
		errs = append(errs, err)
	}
	agentDir := filepath.Join(b.dataDir, "agent")
	ctrdDir := filepath.Join(agentDir, "containerd")
	others := benchkit.FindProcesses(func(argv []string) bool {
		return filepath.Base(argv[0]) == "containerd" && len(argv) == 3 && argv[1] == "--config" && !strings.HasPrefix(argv[2], ctrdDir+"/")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"agent", "teardown", "--data-dir", agentDir}
	if len(others) > 0 {
		fmt.Printf("%d other skiff containerds run on this machine: keeping the shared skiff0 bridge and nftables tables\n", len(others))
		args = append(args, "--keep-shared")
	}
	if out, err := exec.CommandContext(ctx, b.opts.skiff, args...).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("skiff %s: %v\n%s", strings.Join(args, " "), err, out))
	}
	return errors.Join(errs...)
}
