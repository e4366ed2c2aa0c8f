package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

// The mesh as a user sees it (docs/mesh.md), and the cluster's layout
// (scripts/netns-cluster.sh).
const (
	meshLabel         = "mesh.skiff.dev/enabled"
	identityCondition = corev1.PodConditionType("mesh.skiff.dev/Identity")
	meshMetricsPort   = 15020

	subnet    = "172.31.250"
	testhost  = "localhost/skiff/testhost:latest"
	hostLabel = "kubernetes.io/hostname"

	nsOn, nsOff = "mesh-on", "mesh-off"
	httpPort    = 8080
	grpcPort    = 8082
)

// nodeName and nodeIP name node i (1, 2) of the cluster.
func nodeName(i int) string { return fmt.Sprintf("skiff-n%d", i) }
func nodeIP(i int) string   { return fmt.Sprintf("%s.%d", subnet, 10+i) }

// cluster is a two-node scripts/netns-cluster.sh cluster.
type cluster struct {
	skiff, script, dir string
	port               int
	client             kubernetes.Interface
}

func (c *cluster) kubeconfig() string { return filepath.Join(c.dir, "server", "kubeconfig.yaml") }

// up starts the cluster and waits for both nodes to be Ready. An interrupt
// ends the script; the caller's down stops what it had started.
func (c *cluster) up(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.script, "up", c.dir, "2", strconv.Itoa(c.port))
	cmd.Env = append(os.Environ(), "SKIFF_BIN="+c.skiff)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns-cluster.sh up: %v\n%s%s", err, out, c.tails())
	}
	cfg, err := benchkit.RestConfig(c.kubeconfig())
	if err != nil {
		return err
	}
	if c.client, err = benchkit.Clientset(cfg); err != nil {
		return err
	}
	return poll(ctx, 3*time.Minute, "both nodes Ready", func() (bool, error) {
		for i := 1; i <= 2; i++ {
			n, err := c.client.CoreV1().Nodes().Get(ctx, nodeName(i), metav1.GetOptions{})
			if err != nil || !benchkit.Schedulable(n) {
				return false, err
			}
		}
		return true, nil
	})
}

// down takes the cluster down (its own context: it runs after an
// interrupt too).
func (c *cluster) down() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, "down", c.dir)
	cmd.Env = append(os.Environ(), "SKIFF_BIN="+c.skiff)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "netns-cluster.sh down: %v\n%s", err, out)
	}
}

// tails is the end of the server's and first node's logs, for errors.
func (c *cluster) tails() string {
	var b strings.Builder
	for _, log := range []string{"server.log", "n1.log"} {
		if data, err := os.ReadFile(filepath.Join(c.dir, log)); err == nil {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			fmt.Fprintf(&b, "--- tail of %s\n%s\n", log, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	}
	return b.String()
}

// agentPID is the process of node i's agent (the mesh proxy runs in it).
func (c *cluster) agentPID(i int) (int, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("n%d.pid", i)))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// kubectl runs skiff's kubectl against the cluster and returns its
// standard output; a failure carries its standard error.
func (c *cluster) kubectl(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.skiff, append([]string{"kubectl", "--kubeconfig", c.kubeconfig()}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), err
}

// scrapeInNode reads url inside node i's network namespace (kube-proxy's
// metrics listen on that namespace's 127.0.0.1): this program again, under
// nsenter, with -scrape.
func scrapeInNode(ctx context.Context, i int, url string) (benchkit.Samples, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net=/var/run/netns/"+nodeName(i), self, "-scrape", url).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("scrape %s in %s: %w", url, nodeName(i), err)
	}
	return benchkit.ParseSamples(bytes.NewReader(out))
}

// meshMetrics reads node i's mesh proxy metrics (reachable from the host).
func meshMetrics(ctx context.Context, i int) (benchkit.Samples, error) {
	return benchkit.ScrapeURL(ctx, fmt.Sprintf("http://%s:%d/metrics", nodeIP(i), meshMetricsPort))
}

// workload is what the latency and CPU steps aim at, per namespace.
type workload struct {
	serverIP  map[string]map[int]string // namespace → node → the server pod's IP
	clusterIP map[string]string         // namespace → the Service of the skiff-n2 server
}

// deploy creates namespaces mesh-on (enrolled) and mesh-off with their
// servers, client and Service, and waits until every pod is ready and
// every mesh-on pod holds its mesh identity.
func deploy(ctx context.Context, c *cluster) (*workload, error) {
	w := &workload{serverIP: map[string]map[int]string{}, clusterIP: map[string]string{}}
	for _, ns := range []string{nsOff, nsOn} {
		if err := benchkit.CreateNamespace(ctx, c.client, ns); err != nil {
			return nil, err
		}
		if ns == nsOn {
			if err := setNamespaceLabel(ctx, c.client, ns, meshLabel, "true"); err != nil {
				return nil, err
			}
		}
		pods := []*corev1.Pod{server(1), server(2), clientPod()}
		for _, p := range pods {
			if _, err := c.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("create pod %s/%s: %w", ns, p.Name, err)
			}
		}
		svc, err := c.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "server"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "server", "node": nodeName(2)},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(httpPort)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create service %s/server: %w", ns, err)
		}
		w.clusterIP[ns] = svc.Spec.ClusterIP
	}
	started := time.Now()
	for _, ns := range []string{nsOff, nsOn} {
		err := poll(ctx, 5*time.Minute, ns+" pods ready", func() (bool, error) {
			list, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			ips := map[int]string{}
			ready := 0
			for i := range list.Items {
				p := &list.Items[i]
				if !hasCondition(p, corev1.PodReady) || ns == nsOn && !hasCondition(p, identityCondition) {
					continue
				}
				ready++
				if p.Labels["app"] == "server" {
					if p.Spec.NodeName == nodeName(1) {
						ips[1] = p.Status.PodIP
					} else {
						ips[2] = p.Status.PodIP
					}
				}
			}
			w.serverIP[ns] = ips
			return ready == 3 && len(list.Items) == 3, nil
		})
		if err != nil {
			return nil, err
		}
	}
	fmt.Printf("mesh-on and mesh-off pods ready, mesh-on identities issued, in %s\n", time.Since(started).Round(100*time.Millisecond))
	return w, nil
}

// server is a netexec pod on node i: HTTP on 8080, gRPC health on 8082.
func server(i int) *corev1.Pod {
	p := pod(fmt.Sprintf("server-n%d", i), nodeName(i), "netexec", "--grpc-port", strconv.Itoa(grpcPort))
	p.Labels = map[string]string{"app": "server", "node": nodeName(i)}
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: httpPort}, {ContainerPort: grpcPort}}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(httpPort)}},
		PeriodSeconds: 1,
	}
	return p
}

// clientPod is the pod on skiff-n1 the load runs in.
func clientPod() *corev1.Pod { return pod("client", nodeName(1), "pause") }

func pod(name, node string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       podSpec(node, args...),
	}
}

// podSpec runs testhost with args on node (by its hostname label, through
// the scheduler).
func podSpec(node string, args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		NodeSelector:                  map[string]string{hostLabel: node},
		TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{
			Name: "main", Image: testhost, Args: args,
			ImagePullPolicy: corev1.PullNever,
		}},
	}
}

func hasCondition(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setNamespaceLabel(ctx context.Context, client kubernetes.Interface, ns, key, value string) error {
	n, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[key] = value
	if _, err := client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("label namespace %s %s=%s: %w", ns, key, value, err)
	}
	return nil
}

// poll calls cond every 500 ms until it says done, limit passes (an error
// naming what and cond's last error) or ctx ends.
func poll(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		done, err := cond()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s (last error: %v)", what, limit, err)
		}
		if !benchkit.Sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
}
