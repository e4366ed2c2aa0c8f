package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// teardown stops the server and removes what its agent leaves running on
// purpose (containerd, the pods' containers, mounts under the data dir).
//
// `skiff agent teardown` also deletes the skiff0 bridge and the skiff and
// kube-proxy nftables tables, which every skiff agent on the machine
// shares: run while another developer's agent is up, it cuts that agent's
// pods off the network. So when other skiff containerds run, the benchmark
// removes only what is its own, the same way, and says so.
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
	if len(others) == 0 {
		if out, err := exec.CommandContext(ctx, b.opts.skiff, "agent", "teardown", "--data-dir", agentDir).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("skiff agent teardown: %v\n%s", err, out))
		}
		return errors.Join(errs...)
	}
	fmt.Printf("%d other skiff containerds run on this machine: removing only this agent's containerd, containers and mounts, not the shared skiff0 bridge or nftables tables\n", len(others))
	removeSandboxes(ctx, filepath.Join(ctrdDir, "containerd.sock"))
	mine := func(argv []string) bool {
		return slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, ctrdDir) })
	}
	for _, pid := range benchkit.FindProcesses(func(argv []string) bool { return filepath.Base(argv[0]) == "containerd" && mine(argv) }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range benchkit.FindProcesses(func(argv []string) bool {
		return strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && mine(argv)
	}) {
		for _, child := range benchkit.Descendants(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	unmountUnder(b.dataDir)
	return errors.Join(errs...)
}

// removeSandboxes stops and removes every pod sandbox of the containerd on
// socket, which releases the pods' IPs and network namespaces.
func removeSandboxes(ctx context.Context, socket string) {
	if _, err := os.Stat(socket); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, sb := range list.Items {
		_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		_, _ = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
	}
}

// unmountUnder detaches every mount point below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
