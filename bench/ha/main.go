// Command ha benchmarks what issue 14 asks of highly available servers:
// the failover time when the leading server is killed with -9 (time to the
// next acknowledged write, to another server holding the controller
// manager's Lease, and to that controller manager's first action), p50 over
// -runs runs, and the idle memory of each server.
//
//	make build && go build -o /tmp/bench-ha ./bench/ha && /tmp/bench-ha -skiff bin/skiff
//
// Three servers with no nodes, started by scripts/netns-cluster.sh with
// SERVERS=3 (the first in the host's network namespace with --cluster-init,
// the others in namespaces of their own). After they have idled for -idle,
// each server's resident memory is read. Then, each run: a writer creates
// ConfigMaps one at a time, through the leading server first and the next
// one when a write fails; the server holding the kube-controller-manager
// Lease is killed with -9; a Deployment is created through a survivor
// (retried until accepted); the times from the kill to the first write
// acknowledged after it, to the Lease held by another server, and to the
// Deployment's ReplicaSet are taken; the killed server is started again and
// waited for. Every acknowledged write is checked to be there at the end.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

const subnet = "172.31.250"

type cluster struct {
	skiff, script, dir string
	port               int
	admin              *rest.Config
}

// server is server i (1…3): its address, files and host name.
type server int

func (s server) addr() string { return fmt.Sprintf("%s.%d", subnet, int(s)) }

func (s server) name() string {
	if s == 1 {
		return "server"
	}
	return fmt.Sprintf("s%d", int(s))
}

func (s server) hostname() string {
	if s == 1 {
		h, _ := os.Hostname()
		return h
	}
	return fmt.Sprintf("skiff-s%d", int(s))
}

func main() {
	skiff := flag.String("skiff", "bin/skiff", "skiff binary")
	runs := flag.Int("runs", 10, "kills of the leading server")
	idle := flag.Duration("idle", time.Minute, "how long the servers idle before their memory is read")
	port := flag.Int("port", 26443, "the API servers' port")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	benchkit.PrintHeader(os.Stdout, "skiff HA servers: failover and memory", *skiff)
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)
	abs, err := filepath.Abs(*skiff)
	if err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", "bench-ha-")
	if err != nil {
		fail(err)
	}
	c := &cluster{skiff: abs, script: "scripts/netns-cluster.sh", dir: dir, port: *port}
	defer c.down()
	started := time.Now()
	if out, err := c.run("up", dir, "0", strconv.Itoa(*port)); err != nil {
		fail(fmt.Errorf("netns-cluster up: %v\n%s", err, out))
	}
	fmt.Printf("three servers ready in %s\n", time.Since(started).Round(time.Second))
	if c.admin, err = benchkit.RestConfig(filepath.Join(dir, "server", "kubeconfig.yaml")); err != nil {
		fail(err)
	}
	benchkit.Sleep(ctx, *idle)
	var report benchkit.Report
	for s := server(1); s <= 3; s++ {
		m, err := benchkit.ProcessMemory(c.pid(s))
		if err != nil {
			fail(err)
		}
		report.Add(fmt.Sprintf("idle memory of server %d (%s)", s, s.name()), m.String())
	}
	var writes, leads, acts []time.Duration
	acked, lost := 0, 0
	for i := 0; i < *runs && ctx.Err() == nil; i++ {
		r, err := c.failover(ctx, i)
		if err != nil {
			fail(fmt.Errorf("run %d: %w", i+1, err))
		}
		fmt.Printf("run %d: killed %s: next write %s, Lease elsewhere %s, first controller action %s; %d writes acknowledged, %d lost\n",
			i+1, r.victim.name(), benchkit.Ms(r.write), benchkit.Ms(r.lead), benchkit.Ms(r.act), r.acked, r.lost)
		writes, leads, acts = append(writes, r.write), append(leads, r.lead), append(acts, r.act)
		acked, lost = acked+r.acked, lost+r.lost
	}
	report.AddTarget("kill -9 → next acknowledged write", benchkit.Summarize(writes).String(), "", "")
	report.AddTarget("kill -9 → controller manager's Lease on another server", benchkit.Summarize(leads).String(), "≤ 15 s", benchkit.Verdict(benchkit.Median(leads) <= 15*time.Second))
	report.AddTarget("kill -9 → first leader-elected controller action", benchkit.Summarize(acts).String(), "", "")
	report.AddTarget("acknowledged writes lost", fmt.Sprintf("%d of %d", lost, acked), "0", benchkit.Verdict(lost == 0))
	report.Add("load average during the run", load.Stop())
	report.Print(os.Stdout)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/ha:", err)
	os.Exit(1)
}

func (c *cluster) run(args ...string) ([]byte, error) {
	cmd := exec.Command(c.script, args...)
	cmd.Env = append(os.Environ(), "SKIFF_BIN="+c.skiff, "SERVERS=3")
	return cmd.CombinedOutput()
}

func (c *cluster) down() {
	if out, err := c.run("down", c.dir); err != nil {
		fmt.Fprintf(os.Stderr, "netns-cluster down: %v\n%s", err, out)
	}
	os.RemoveAll(c.dir)
}

func (c *cluster) pid(s server) int {
	data, err := os.ReadFile(filepath.Join(c.dir, s.name()+".pid"))
	if err != nil {
		fail(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		fail(err)
	}
	return pid
}

func (c *cluster) client(s server) kubernetes.Interface {
	rc := rest.CopyConfig(c.admin)
	rc.Host = fmt.Sprintf("https://%s:%d", s.addr(), c.port)
	rc.Timeout = 3 * time.Second
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		fail(err)
	}
	return client
}

type result struct {
	victim           server
	write, lead, act time.Duration
	acked, lost      int
}

func (c *cluster) failover(ctx context.Context, run int) (result, error) {
	ns := fmt.Sprintf("run-%d", run)
	c2 := c.client(2)
	var victim server
	for victim == 0 {
		l, err := c2.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, "kube-controller-manager", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil {
			host, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
			for s := server(1); s <= 3; s++ {
				if s.hostname() == host {
					victim = s
				}
			}
		}
		if victim == 0 && !benchkit.Sleep(ctx, time.Second) {
			return result{}, ctx.Err()
		}
	}
	survivor := victim%3 + 1
	sc := c.client(survivor)
	if err := benchkit.CreateNamespace(ctx, sc, ns); err != nil {
		return result{}, err
	}
	clients := []kubernetes.Interface{c.client(victim), sc, c.client(survivor%3 + 1)}
	wctx, stop := context.WithCancel(ctx)
	type ack struct {
		name string
		at   time.Time
	}
	acks := make(chan ack, 100000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cur := 0
		for n := 0; wctx.Err() == nil; {
			name := fmt.Sprintf("w-%05d", n)
			cctx, cancel := context.WithTimeout(wctx, 3*time.Second)
			_, err := clients[cur].CoreV1().ConfigMaps(ns).Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			cancel()
			if err == nil || apierrors.IsAlreadyExists(err) {
				acks <- ack{name, time.Now()}
				n++
				continue
			}
			cur = (cur + 1) % len(clients)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	benchkit.Sleep(ctx, 3*time.Second)
	if err := syscall.Kill(c.pid(victim), syscall.SIGKILL); err != nil {
		stop()
		return result{}, err
	}
	killed := time.Now()
	r := result{victim: victim}
	labels := map[string]string{"app": "after"}
	replicas := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "localhost/skiff/testhost:latest"}}},
			},
		},
	}
	for created := false; ; {
		if !created {
			_, err := sc.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			created = err == nil || apierrors.IsAlreadyExists(err)
		}
		if r.lead == 0 {
			if l, err := sc.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err == nil &&
				l.Spec.HolderIdentity != nil && !strings.HasPrefix(*l.Spec.HolderIdentity, victim.hostname()+"_") {
				r.lead = time.Since(killed)
			}
		}
		if r.act == 0 && created {
			if rs, err := sc.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=after"}); err == nil && len(rs.Items) > 0 {
				r.act = time.Since(killed)
			}
		}
		if r.lead != 0 && r.act != 0 {
			break
		}
		if time.Since(killed) > 2*time.Minute || ctx.Err() != nil {
			stop()
			return result{}, fmt.Errorf("no failover within 2 minutes (lead %s, act %s)", r.lead, r.act)
		}
		time.Sleep(50 * time.Millisecond)
	}
	benchkit.Sleep(ctx, 2*time.Second)
	stop()
	<-done
	close(acks)
	var names []string
	for a := range acks {
		names = append(names, a.name)
		if r.write == 0 && a.at.After(killed) {
			r.write = a.at.Sub(killed)
		}
	}
	list, err := sc.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return result{}, err
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	r.acked = len(names)
	for _, n := range names {
		if !have[n] {
			r.lost++
		}
	}
	return r, c.restart(ctx, victim)
}

// restart starts server s again as the script started it and waits until
// it is ready.
func (c *cluster) restart(ctx context.Context, s server) error {
	logPath := filepath.Join(c.dir, s.name()+".log")
	before, _ := os.ReadFile(logPath)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	argv := []string{c.skiff, "server", "--data-dir", filepath.Join(c.dir, s.name()), "--https-listen-port", strconv.Itoa(c.port),
		"--advertise-address", s.addr(), "--tls-san", s.addr(), "--disable-agent"}
	if s != 1 {
		argv = append([]string{"nsenter", "--net=/var/run/netns/skiff-s" + strconv.Itoa(int(s)), "unshare", "--uts",
			"sh", "-c", `hostname "$0" && exec "$@"`, s.hostname()}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(c.dir, s.name()+".pid"), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		data, _ := os.ReadFile(logPath)
		if bytes.Contains(data[len(before):], []byte("skiff server is ready")) {
			// Its etcd member catches up and its controllers stand by.
			benchkit.Sleep(ctx, 10*time.Second)
			return nil
		}
		if !benchkit.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s not ready again within 3 minutes", s.name())
}
