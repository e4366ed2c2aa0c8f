package agent

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffdev/skiff/internal/agent/netpol"
	"github.com/skiffdev/skiff/internal/agent/podnet"
	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/mesh"
)

// Teardown removes what an agent leaves running on purpose when it stops
// (its containerd, the pods' containers and network namespaces), unmounts
// everything under its data dir, so the directory can be deleted, and
// removes the kubelet's links to its containers' logs (/var/log/containers).
// Tests and `skiff agent teardown` use it; it is idempotent.
//
// With keepShared it leaves what every agent in the same network namespace
// shares — the skiff0 bridge and the nftables tables — for when other agents
// still run beside it (benchmarks and tests on a busy machine).
func Teardown(ctx context.Context, dataDir string, keepShared bool) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	ctrdDir := filepath.Join(dataDir, "containerd")
	socket := ContainerdSocket(dataDir)
	removeSandboxes(ctx, socket)

	// containerd itself, then every shim it started and their containers.
	for _, pid := range findProcs(func(cmdline []string) bool {
		return len(cmdline) > 0 && filepath.Base(cmdline[0]) == "containerd" && containsPrefix(cmdline, ctrdDir)
	}) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, shim := range findProcs(func(cmdline []string) bool {
		return len(cmdline) > 0 && strings.HasPrefix(filepath.Base(cmdline[0]), "containerd-shim") && containsPrefix(cmdline, ctrdDir)
	}) {
		for _, child := range descendants(shim) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(shim, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	unmountUnder(dataDir)
	removeLogLinks(legacyLogDir, podLogsDir(dataDir), true)
	if name, err := os.ReadFile(filepath.Join(dataDir, nodeNameFile)); err == nil && len(name) > 0 {
		removeCgroupRoot("/skiff/" + string(name))
	}
	if keepShared {
		return nil
	}
	// The gateway address pool's local route (runIngress), if the cluster
	// has a pool.
	if data, err := os.ReadFile(filepath.Join(dataDir, clusterConfigFile)); err == nil {
		if cc, err := clusterconfig.Decode(data); err == nil && cc.GatewayAddressPool != "" {
			if pool, err := netip.ParsePrefix(cc.GatewayAddressPool); err == nil {
				_ = forgetLocally(pool)
			}
		}
	}
	// kube-proxy's rules (tables ip and ip6 kube-proxy, upstream's names),
	// if this agent ran it; then each subsystem removes its own.
	for _, family := range []string{"ip", "ip6"} {
		_ = exec.CommandContext(ctx, "nft", "delete", "table", family, "kube-proxy").Run()
	}
	netpol.Teardown(ctx)
	_ = mesh.DeleteCapture(ctx)
	podnet.Teardown(ctx)
	return nil
}

// removeSandboxes stops and removes every pod sandbox through the CRI, which
// releases pod IPs and deletes the pods' network namespaces.
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

func containsPrefix(args []string, prefix string) bool {
	for _, a := range args {
		if strings.Contains(a, prefix) {
			return true
		}
	}
	return false
}

// findProcs returns the pids whose command line matches.
func findProcs(match func([]string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// The parent pid is the second field after the ")" closing the name.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
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
