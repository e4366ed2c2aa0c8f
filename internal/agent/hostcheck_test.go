package agent

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// fakeHost is a host with the given files and programs.
func fakeHost(files map[string]string, programs ...string) Host {
	has := map[string]bool{}
	for _, p := range programs {
		has[p] = true
	}
	return Host{
		ReadFile: func(p string) ([]byte, error) {
			if c, ok := files[p]; ok {
				return []byte(c), nil
			}
			return nil, os.ErrNotExist
		},
		Exists: func(p string) bool { _, ok := files[p]; return ok },
		LookPath: func(n string) (string, error) {
			if has[n] {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		},
		Run: func(n string, _ ...string) bool { return has[n] },
		Output: func(n string, _ ...string) (string, error) {
			if n == "/usr/bin/containerd" {
				return "containerd github.com/containerd/containerd/v2 v2.4.2 \n", nil
			}
			return "", errors.New("no output")
		},
		PortFree:      func(p int) bool { return p != 80 },
		Root:          true,
		KernelRelease: "6.1.0",
	}
}

// withContainerd makes the host's containerd print version.
func withContainerd(h Host, version string) Host {
	h.Output = func(string, ...string) (string, error) { return version, nil }
	return h
}

func goodFiles() map[string]string {
	return map[string]string{
		"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids",
		"/usr/lib/cni/bridge":               "", "/usr/lib/cni/host-local": "", "/usr/lib/cni/portmap": "", "/usr/lib/cni/loopback": "",
		"/proc/filesystems":    "nodev\toverlay\n",
		"/proc/sys/net/bridge": "",
	}
}

func TestCheckHost(t *testing.T) {
	all := []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nft"}
	for _, tc := range []struct {
		name      string
		host      Host
		opts      CheckOptions
		wantFatal []string // checks that fail and stop the node
		wantWarn  []string // checks that fail with a warning
	}{
		{"complete", fakeHost(goodFiles(), all...), CheckOptions{KubeletPort: 10250}, nil, nil},
		{"no containerd", fakeHost(goodFiles(), "containerd-shim-runc-v2", "runc", "ctr", "nft"), CheckOptions{}, []string{"program containerd"}, nil},
		{"containerd 1.6", withContainerd(fakeHost(goodFiles(), all...), "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n"),
			CheckOptions{}, []string{"containerd version"}, nil},
		{"containerd 2.0", withContainerd(fakeHost(goodFiles(), all...), "containerd github.com/containerd/containerd/v2 v2.0.5 abc\n"),
			CheckOptions{}, []string{"containerd version"}, nil},
		{"containerd 3.0", withContainerd(fakeHost(goodFiles(), all...), "containerd github.com/containerd/containerd/v3 v3.0.0\n"),
			CheckOptions{}, nil, nil},
		{"no nft", fakeHost(goodFiles(), "containerd", "containerd-shim-runc-v2", "runc", "ctr"), CheckOptions{}, []string{"program nft", "nf_tables"}, nil},
		{"no memory controller", func() Host {
			f := goodFiles()
			f["/sys/fs/cgroup/cgroup.controllers"] = "cpu pids"
			return fakeHost(f, all...)
		}(), CheckOptions{}, []string{"cgroup controller memory"}, []string{"cgroup controller cpuset"}},
		{"cgroup v1", func() Host {
			f := goodFiles()
			delete(f, "/sys/fs/cgroup/cgroup.controllers")
			for _, c := range []string{"cpu", "memory", "pids", "cpuset"} {
				f["/sys/fs/cgroup/"+c] = ""
			}
			return fakeHost(f, all...)
		}(), CheckOptions{}, nil, []string{"cgroup v2"}},
		{"no CNI plugins, no br_netfilter", func() Host {
			f := goodFiles()
			delete(f, "/usr/lib/cni/portmap")
			delete(f, "/proc/sys/net/bridge")
			return fakeHost(f, all...)
		}(), CheckOptions{}, []string{"CNI plugin portmap"}, []string{"br_netfilter"}},
		{"vxlan without the module", fakeHost(goodFiles(), all...), CheckOptions{PodNetwork: "vxlan"}, []string{"vxlan"}, nil},
		{"ports", fakeHost(goodFiles(), all...), CheckOptions{IngressPorts: []int{80, 443}}, nil, []string{"port 80 free"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fatal, warn []string
			for _, f := range CheckHost(tc.host, tc.opts) {
				if f.OK {
					continue
				}
				if f.Fix == "" || f.Problem == "" {
					t.Errorf("%s fails without a problem and a fix: %+v", f.Check, f)
				}
				if f.Fatal {
					fatal = append(fatal, f.Check)
				} else {
					warn = append(warn, f.Check)
				}
			}
			if strings.Join(fatal, ",") != strings.Join(tc.wantFatal, ",") || strings.Join(warn, ",") != strings.Join(tc.wantWarn, ",") {
				t.Errorf("fatal %v, warnings %v; want %v, %v", fatal, warn, tc.wantFatal, tc.wantWarn)
			}
		})
	}
}

func TestContainerdVersion(t *testing.T) {
	for _, tc := range []struct {
		out          string
		major, minor int
		version      string
		err          bool
	}{
		{"containerd github.com/containerd/containerd/v2 v2.4.2 \n", 2, 4, "2.4.2", false},
		{"containerd github.com/containerd/containerd/v2 2.4.2+unknown\n", 2, 4, "2.4.2+unknown", false},
		{"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n", 1, 6, "1.6.20~ds1", false},
		{"", 0, 0, "", true},
		{"runc version 1.1.5", 0, 0, "", true},
		{"containerd github.com/containerd/containerd/v2 dev", 0, 0, "", true},
	} {
		major, minor, version, err := containerdVersion(tc.out)
		if (err != nil) != tc.err || major != tc.major || minor != tc.minor || version != tc.version {
			t.Errorf("containerdVersion(%q) = %d, %d, %q, %v; want %d, %d, %q, error %v",
				tc.out, major, minor, version, err, tc.major, tc.minor, tc.version, tc.err)
		}
	}
}
