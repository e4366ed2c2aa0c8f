package agent

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/skiffdev/skiff/internal/agent/podnet"
)

// Finding is one thing `skiff check-config` looked at.
type Finding struct {
	// Check names what was looked at.
	Check string
	// OK says it is there; else Problem says what is missing and Fix how
	// to add it.
	OK           bool
	Problem, Fix string
	// Fatal means the node cannot run without it (else it runs with less:
	// a warning).
	Fatal bool
}

// Host is what the checks read of the machine; RealHost reads this one.
// Tests give their own.
type Host struct {
	// ReadFile reads a file (of /proc, /sys).
	ReadFile func(path string) ([]byte, error)
	// Exists reports whether a path exists.
	Exists func(path string) bool
	// LookPath finds a program: beside the skiff binary, then on $PATH
	// (FindProgram).
	LookPath func(name string) (string, error)
	// Output runs a program and returns its standard output.
	Output func(name string, args ...string) (string, error)
	// PortFree reports whether a TCP port can be listened on.
	PortFree func(port int) bool
	// Run runs a program and reports whether it succeeded.
	Run func(name string, args ...string) bool
	// Root reports whether the process runs as root.
	Root bool
	// KernelRelease is uname -r.
	KernelRelease string
}

// RealHost is this machine.
func RealHost() Host {
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return Host{
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		LookPath: FindProgram,
		Output: func(name string, args ...string) (string, error) {
			out, err := exec.Command(name, args...).Output()
			return string(out), err
		},
		PortFree: func(port int) bool {
			l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
			if err != nil {
				return false
			}
			l.Close()
			return true
		},
		Run:           func(name string, args ...string) bool { return exec.Command(name, args...).Run() == nil },
		Root:          os.Geteuid() == 0,
		KernelRelease: strings.TrimSpace(string(release)),
	}
}

// CheckOptions say which of the optional parts a node runs.
type CheckOptions struct {
	CNIBinDir   string // default /usr/lib/cni
	PodNetwork  string // host-gw or vxlan
	KubeletPort int    // 0: not checked
	// IngressPorts are checked when the proxy runs.
	IngressPorts []int
	// ServerPort is checked by `skiff check-config` on a machine that
	// will run a server (0: not checked).
	ServerPort int
}

// CheckHost reports what the node needs of the host: root, cgroups,
// kernel features, containerd and its tools, the CNI plugins, free ports.
func CheckHost(h Host, o CheckOptions) []Finding {
	if o.CNIBinDir == "" {
		o.CNIBinDir = "/usr/lib/cni"
	}
	var out []Finding
	add := func(check string, ok, fatal bool, problem, fix string) {
		out = append(out, Finding{Check: check, OK: ok, Fatal: fatal, Problem: problem, Fix: fix})
	}
	add("running as root", h.Root, true, "not root: containerd, the kubelet and the pod network need root", "run skiff as root (sudo)")

	controllers, err := h.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	v2 := err == nil
	add("cgroup v2", v2, false, "cgroup v1 (no unified hierarchy at /sys/fs/cgroup): supported, but resource accounting is poorer",
		"boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line")
	have := map[string]bool{}
	for _, c := range strings.Fields(string(controllers)) {
		have[c] = true
	}
	for _, c := range []string{"cpu", "memory", "pids", "cpuset"} {
		ok := have[c]
		if !v2 {
			ok = h.Exists(filepath.Join("/sys/fs/cgroup", c))
		}
		essential := c == "cpu" || c == "memory" || c == "pids"
		problem := "the cgroup controller " + c + " is not enabled: its limits are ignored"
		if essential {
			problem = "the cgroup controller " + c + " is not enabled: pods' limits cannot be enforced"
		}
		add("cgroup controller "+c, ok, essential, problem, "enable it (cgroup_enable="+c+" on the kernel command line, or your init system's delegation)")
	}

	// containerd, its shim and ctr are built from containerd's Go module
	// into bin/ beside skiff (make build); runc and nft are Debian's.
	const buildContainerd = "make build (it builds containerd 2.x into bin/, beside skiff), or put containerd 2.1 or later on $PATH"
	for _, p := range []struct {
		name, fix string
		why       string
	}{
		{"containerd", buildContainerd, "the container runtime"},
		{"containerd-shim-runc-v2", buildContainerd, "containerd's shim for runc"},
		{"runc", "apt-get install runc", "containerd's OCI runtime"},
		{"ctr", buildContainerd, "imports images"},
		{"nft", "apt-get install nftables", "Services (kube-proxy) and NetworkPolicy"},
	} {
		path, err := h.LookPath(p.name)
		add("program "+p.name, err == nil, true, p.name+" is neither beside skiff nor on $PATH ("+p.why+")", p.fix)
		if p.name != "containerd" || err != nil {
			continue
		}
		// 2.1: image volumes, and the CNI's bin_dirs the configuration uses.
		out, err := h.Output(path, "--version")
		major, minor, version, perr := containerdVersion(out)
		switch {
		case err != nil:
			add("containerd version", false, true, fmt.Sprintf("%s --version: %v", path, err), buildContainerd)
		case perr != nil:
			add("containerd version", false, true, perr.Error(), buildContainerd)
		default:
			add("containerd version", major > 2 || major == 2 && minor >= 1, true,
				fmt.Sprintf("containerd %s at %s is too old: skiff needs containerd 2.1 or later (image volumes, its configuration)", version, path),
				buildContainerd)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		ok := h.Exists(filepath.Join(o.CNIBinDir, plugin))
		add("CNI plugin "+plugin, ok, true, fmt.Sprintf("no %s in %s (the pod network's reference CNI plugins)", plugin, o.CNIBinDir),
			"apt-get install containernetworking-plugins (or --cni-bin-dir where yours are)")
	}

	module := func(name string) bool {
		return h.Exists("/sys/module/"+name) ||
			h.Exists(filepath.Join("/lib/modules", h.KernelRelease, "modules.builtin")) && builtin(h, name) ||
			moduleFile(h, name)
	}
	filesystems, _ := h.ReadFile("/proc/filesystems")
	add("overlay filesystem", strings.Contains(string(filesystems), "overlay") || module("overlay"), true,
		"the kernel has no overlay filesystem (containerd's snapshotter)", "modprobe overlay")
	_, nftErr := h.LookPath("nft")
	add("nf_tables", nftErr == nil && h.Run("nft", "list", "tables"), true,
		"nft cannot list the kernel's tables: no nf_tables (Services and NetworkPolicy), or not root", "modprobe nf_tables")
	add("br_netfilter", h.Exists("/proc/sys/net/bridge"), false,
		"br_netfilter is not loaded: NetworkPolicy does not see traffic between two pods of one node",
		"modprobe br_netfilter (and add it to /etc/modules-load.d)")
	if o.PodNetwork == podnet.BackendVXLAN {
		add("vxlan", module("vxlan"), true, "the kernel has no vxlan module (--pod-network vxlan)", "modprobe vxlan, or --pod-network host-gw")
	}

	ports := []struct {
		port      int
		what, fix string
		fatal     bool
	}{
		{o.ServerPort, "the API server", "stop what holds it, or skiff server --https-listen-port", true},
		{o.KubeletPort, "the kubelet", "stop what holds it (another kubelet?), or --kubelet-port", true},
	}
	for _, p := range o.IngressPorts {
		ports = append(ports, struct {
			port      int
			what, fix string
			fatal     bool
		}{p, "the ingress proxy", "stop what holds it, or --ingress-http-port/--ingress-https-port, or --disable-ingress", false})
	}
	for _, p := range ports {
		if p.port == 0 {
			continue
		}
		add(fmt.Sprintf("port %d free", p.port), h.PortFree(p.port), p.fatal,
			fmt.Sprintf("port %d (%s) is in use", p.port, p.what), p.fix)
	}
	return out
}

// builtin reports whether modules.builtin lists the module.
func builtin(h Host, name string) bool {
	data, err := h.ReadFile(filepath.Join("/lib/modules", h.KernelRelease, "modules.builtin"))
	return err == nil && strings.Contains(string(data), "/"+name+".ko")
}

// moduleFile reports whether modules.dep lists the module (loadable).
func moduleFile(h Host, name string) bool {
	data, err := h.ReadFile(filepath.Join("/lib/modules", h.KernelRelease, "modules.dep"))
	return err == nil && strings.Contains(string(data), "/"+name+".ko")
}

// FatalFindings are the problems the node cannot run with.
func FatalFindings(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.OK && f.Fatal {
			out = append(out, f)
		}
	}
	return out
}
