package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffdev/skiff/internal/agent/podnet"
	"github.com/skiffdev/skiff/internal/images"
)

// containerd is the agent's private containerd: its own root, state, socket
// and CNI directories under the agent's data dir, so it never touches a
// system containerd. It keeps running when the agent is killed (as a
// systemd-managed containerd outlives the kubelet), so pods survive an agent
// restart; a restarted agent reuses it, if it runs the same program
// (replaceOther).
type containerd struct {
	dir        string // DATA/containerd
	cniConfDir string
	cniBinDir  string
	ipamDir    string
	// mirror is http://host:port of the loopback registry (the first
	// endpoint of every registry host; containerd falls back to the
	// registry), or "".
	mirror     string
	podNetwork string // the pod network's backend (podnet.Backend*)
	log        *slog.Logger
}

func (c *containerd) socket() string   { return filepath.Join(c.dir, "containerd.sock") }
func (c *containerd) Endpoint() string { return "unix://" + c.socket() }

// configTemplate is containerd's configuration for 2.1 and later (version
// 3, which 2.4 migrates to its 4 in memory). restrict_oom_score_adj is
// required on these VMs (no CAP_SYS_RESOURCE; NOTES-runtime.md). NRI is
// off: its socket is machine-wide (/var/run/nri), and a private instance
// must not take a system containerd's. Registry hosts are configured by
// hosts.toml files under certs.d (registryHosts), for the CRI's pulls and
// the transfer service's alike.
var configTemplate = template.Must(template.New("config").Parse(`version = 3
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{{.Dir}}/containerd.sock"

[ttrpc]
  address = "{{.Dir}}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/skiff/pause:latest"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{{.Dir}}/certs.d"

[plugins."io.containerd.transfer.v1.local"]
  config_path = "{{.Dir}}/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{{.CNIBinDir}}"]
    conf_dir = "{{.CNIConfDir}}"
    conf_template = "{{.Dir}}/cni-template.conflist"
`))

// registryHosts writes containerd's registry host configuration: with a
// mirror, certs.d/_default/hosts.toml makes it the first endpoint of every
// registry host (containerd falls back to the registry itself); without
// one, the directory is empty and every host is reached directly.
func (c *containerd) registryHosts() error {
	dir := filepath.Join(c.dir, "certs.d")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if c.mirror == "" {
		return os.MkdirAll(dir, 0o700)
	}
	if err := os.MkdirAll(filepath.Join(dir, "_default"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "_default", "hosts.toml"), []byte(images.HostsTOML(c.mirror)), 0o600)
}

func (c *containerd) writeConfig() (string, error) {
	for _, d := range []string{c.dir, c.cniConfDir, c.ipamDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	cni := podnet.CNITemplate(c.podNetwork, c.ipamDir)
	if err := os.WriteFile(filepath.Join(c.dir, "cni-template.conflist"), []byte(cni), 0o600); err != nil {
		return "", err
	}
	if err := c.registryHosts(); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := configTemplate.Execute(&b, map[string]any{
		"Dir": c.dir, "CNIBinDir": c.cniBinDir, "CNIConfDir": c.cniConfDir,
	}); err != nil {
		return "", err
	}
	path := filepath.Join(c.dir, "config.toml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// alive reports whether a containerd answers on the socket.
func (c *containerd) alive() bool {
	conn, err := net.DialTimeout("unix", c.socket(), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Run keeps containerd running until ctx ends. It returns after the first
// start is ready through ready (closed once the socket answers).
func (c *containerd) Run(ctx context.Context, ready chan<- struct{}) error {
	path, err := c.writeConfig()
	if err != nil {
		return err
	}
	bin, err := FindProgram("containerd")
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if err := c.replaceOther(ctx, bin); err != nil {
		return err
	}
	signalled := false
	for ctx.Err() == nil {
		if c.alive() {
			// Left running by an earlier agent: reuse it, and watch it.
			if !signalled {
				close(ready)
				signalled = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
			continue
		}
		cmd := exec.Command(bin, "--config", path)
		// Its shim is looked for on $PATH: the one beside this containerd
		// first (they are built together).
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		logFile, err := os.OpenFile(filepath.Join(c.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// Its own process group: a Ctrl-C to the agent does not stop it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("start containerd: %w", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logFile.Close() }()
		if err := c.waitSocket(ctx, exited); err != nil {
			return err
		}
		c.log.Info("containerd running", "pid", cmd.Process.Pid, "socket", c.socket())
		if !signalled {
			close(ready)
			signalled = true
		}
		select {
		case <-ctx.Done():
			// Left running on purpose: pods outlive the agent process.
			return nil
		case err := <-exited:
			c.log.Warn("containerd exited; restarting", "err", err)
			time.Sleep(time.Second)
		}
	}
	return nil
}

// replaceOther stops the containerd an earlier agent left running on the
// socket when it runs another program than bin (an older skiff's, or a
// system package's), so that an upgrade takes effect at the next agent
// start instead of the new agent speaking to the old runtime. Its
// containers keep running: their shims are processes of their own, and
// the containerd started next reconnects to them. When the running
// program cannot be told (another PID namespace), it is reused as before.
// With none answering on the socket there is nothing to replace.
func (c *containerd) replaceOther(ctx context.Context, bin string) error {
	pid, err := c.peerPID()
	if errors.Is(err, errNoPeer) {
		return nil
	}
	if err != nil {
		c.log.Warn("containerd left running: cannot tell its program; reusing it", "err", err)
		return nil
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	running, err := os.Stat(exe)
	if err != nil {
		c.log.Warn("containerd left running: cannot tell its program; reusing it", "pid", pid, "err", err)
		return nil
	}
	want, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if os.SameFile(running, want) {
		return nil
	}
	name, _ := os.Readlink(exe)
	c.log.Info("containerd left running is another program; restarting it as this agent's (containers keep running)",
		"pid", pid, "running", name, "program", bin)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop containerd %d: %w", pid, err)
	}
	// Gone, not only its socket closed: the next one opens the same
	// metadata database, which the old one holds locked until it exits.
	kill := time.After(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-kill:
			c.log.Warn("containerd did not stop within 30s of SIGTERM; killing it", "pid", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			kill = nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// errNoPeer is peerPID's error when nothing answers on the socket.
var errNoPeer = errors.New("no containerd answers on the socket")

// peerPID is the process id of what listens on the socket, as the kernel
// reports it for a connection (SO_PEERCRED).
func (c *containerd) peerPID() (int, error) {
	conn, err := net.DialTimeout("unix", c.socket(), time.Second)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errNoPeer, err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	if cred.Pid <= 0 {
		return 0, errors.New("the kernel reports no process (another PID namespace)")
	}
	return int(cred.Pid), nil
}

func (c *containerd) waitSocket(ctx context.Context, exited <-chan error) error {
	deadline := time.After(60 * time.Second)
	for !c.alive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("containerd exited at start (see %s): %v", filepath.Join(c.dir, "containerd.log"), err)
		case <-deadline:
			return errors.New("containerd did not open its socket within 60s")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
