package workloads

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/skiffdev/skiff/internal/server"
	"github.com/skiffdev/skiff/internal/sim"
	"github.com/skiffdev/skiff/test/testenv"
)

func TestMain(m *testing.M) {
	// The tests mostly wait for controllers, so run them all at once even
	// on a 2-core machine; -parallel on the command line still wins.
	_ = flag.Set("test.parallel", "16")
	testenv.Main(m, testenv.Options{Mutate: func(c *server.Config) {
		// A lost node is noticed after 10 s instead of 50 s, and its pods
		// are evicted 5 s later instead of 300 s.
		c.ControllerManagerArgs = append(c.ControllerManagerArgs,
			"node-monitor-grace-period=10s", "node-monitor-period=2s")
		c.APIServerArgs = append(c.APIServerArgs,
			"default-unreachable-toleration-seconds=5", "default-not-ready-toleration-seconds=5")
	}})
}

// heartbeat is the Lease renewal interval of every Sim here: well inside
// the 10 s node-monitor-grace-period set above.
const heartbeat = 2 * time.Second

// Timeouts: generous, since the machine is shared, but bounded.
const (
	short = 30 * time.Second
	long  = 90 * time.Second
)

var ctx = context.Background()

func simLog() *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startSim runs a Sim in the test process and waits for its nodes to be
// Ready. It runs until stop is called or the process ends: its nodes may
// carry other tests' pods, so only a test that means to lose nodes stops one.
func startSim(t *testing.T, cfg sim.Config) (stop func()) {
	t.Helper()
	env := testenv.Get(t)
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = heartbeat
	}
	cfg.Log = simLog()
	s, err := sim.New(cfg, env.Config)
	if err != nil {
		t.Fatalf("new sim: %v", err)
	}
	simCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(simCtx) }()
	select {
	case <-s.Registered():
	case err := <-done:
		cancel()
		t.Fatalf("sim %s stopped: %v", cfg.NamePrefix, err)
	case <-time.After(long):
		cancel()
		t.Fatalf("sim %s: nodes not registered within %s", cfg.NamePrefix, long)
	}
	// Ready, and rid of the not-ready taint the API server puts on every
	// new node: only then does the scheduler consider it.
	for _, n := range s.NodeNames() {
		waitNode(t, n, "Ready and untainted", func(n *corev1.Node) bool {
			for _, taint := range n.Spec.Taints {
				if taint.Key == corev1.TaintNodeNotReady || taint.Key == corev1.TaintNodeUnreachable {
					return false
				}
			}
			return nodeReady(n) == corev1.ConditionTrue
		})
	}
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sim %s: %v", cfg.NamePrefix, err)
			}
		case <-time.After(short):
			t.Errorf("sim %s did not stop within %s", cfg.NamePrefix, short)
		}
	}
}

var (
	baseOnce sync.Once
	baseErr  string
)

// baseNodes makes sure the package's shared nodes run: three plain 32-CPU
// nodes any test's pods may land on.
func baseNodes(t *testing.T) {
	t.Helper()
	baseOnce.Do(func() {
		defer func() {
			if t.Failed() {
				baseErr = "base nodes failed to start in " + t.Name()
			}
		}()
		startSim(t, sim.Config{Nodes: 3, NamePrefix: "base-"})
	})
	if baseErr != "" {
		t.Fatal(baseErr)
	}
}

// namespace is a fresh namespace for the test, once its default
// ServiceAccount exists (pods created before it are refused).
func namespace(t *testing.T) string {
	t.Helper()
	env := testenv.Get(t)
	ns := env.Namespace(t)
	waitFor(t, short, "default ServiceAccount in "+ns, func() (error, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err, nil
	}, func(err error) bool { return err == nil })
	return ns
}

// nodePrefix is a node name prefix private to a test's namespace.
func nodePrefix(ns, role string) string { return ns + "-" + role + "-" }

// --- object builders ---

// podOpt changes a pod template.
type podOpt func(*corev1.PodTemplateSpec)

func template(app string, opts ...podOpt) corev1.PodTemplateSpec {
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.example/app:v1"}},
			TerminationGracePeriodSeconds: ptr(int64(5)),
		},
	}
	for _, o := range opts {
		o(&tpl)
	}
	return tpl
}

func image(img string) podOpt {
	return func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Image = img }
}

func cpu(q string) podOpt {
	return func(p *corev1.PodTemplateSpec) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
	}
}

func nodeSelector(k, v string) podOpt {
	return func(p *corev1.PodTemplateSpec) {
		if p.Spec.NodeSelector == nil {
			p.Spec.NodeSelector = map[string]string{}
		}
		p.Spec.NodeSelector[k] = v
	}
}

func tolerate(key string) podOpt {
	return func(p *corev1.PodTemplateSpec) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists})
	}
}

func restart(r corev1.RestartPolicy) podOpt {
	return func(p *corev1.PodTemplateSpec) { p.Spec.RestartPolicy = r }
}

func annotate(k, v string) podOpt {
	return func(p *corev1.PodTemplateSpec) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func selector(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func makePod(ns, name string, opts ...podOpt) *corev1.Pod {
	tpl := template(name, opts...)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: tpl.Labels, Annotations: tpl.Annotations}, Spec: tpl.Spec}
}

func makeDeployment(ns, name string, replicas int32, opts ...podOpt) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: selector(name),
			Template: template(name, opts...),
		},
	}
}

func rollingUpdate(d *appsv1.Deployment, maxSurge, maxUnavailable int) *appsv1.Deployment {
	s, u := intstr.FromInt32(int32(maxSurge)), intstr.FromInt32(int32(maxUnavailable))
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u},
	}
	return d
}

func makeReplicaSet(ns, name string, replicas int32, opts ...podOpt) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: selector(name), Template: template(name, opts...)},
	}
}

func makeStatefulSet(ns, name string, replicas int32, opts ...podOpt) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: selector(name), Template: template(name, opts...), ServiceName: name,
		},
	}
}

func makeDaemonSet(ns, name string, opts ...podOpt) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.DaemonSetSpec{Selector: selector(name), Template: template(name, opts...)},
	}
}

func makeJob(ns, name string, completions, parallelism int32, opts ...podOpt) *batchv1.Job {
	opts = append([]podOpt{restart(corev1.RestartPolicyNever)}, opts...)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{
			Completions: &completions, Parallelism: &parallelism,
			Template: template(name, opts...),
		},
	}
}

func ptr[T any](v T) *T { return &v }

// update runs a read-modify-write, again on conflicts.
func update(t *testing.T, what string, rmw func() error) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, rmw); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// --- waiting and reading ---

// waitFor polls get until ok holds, and returns the object that satisfied it.
func waitFor[T any](t *testing.T, timeout time.Duration, what string, get func() (T, error), ok func(T) bool) T {
	t.Helper()
	var last T
	testenv.Eventually(t, timeout, what, func() (bool, error) {
		v, err := get()
		if err != nil {
			return false, err
		}
		last = v
		return ok(v), nil
	})
	return last
}

func waitNode(t *testing.T, name, what string, ok func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	c := testenv.Get(t).Client
	return waitFor(t, long, "node "+name+" "+what, func() (*corev1.Node, error) {
		return c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}, ok)
}

func waitDeployment(t *testing.T, ns, name, what string, ok func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	c := testenv.Get(t).Client
	return waitFor(t, long, "deployment "+name+" "+what, func() (*appsv1.Deployment, error) {
		return c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	}, ok)
}

// waitPods waits until the live (not deleted) pods matching selector satisfy ok.
func waitPods(t *testing.T, ns, selector, what string, ok func([]corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	return waitFor(t, long, what, func() ([]corev1.Pod, error) { return livePods(t, ns, selector) }, ok)
}

// livePods are the pods matching selector that are not being deleted.
func livePods(t *testing.T, ns, selector string) ([]corev1.Pod, error) {
	list, err := testenv.Get(t).Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// allRunning reports whether there are n pods, all Running and Ready on a node.
func allRunning(n int) func([]corev1.Pod) bool {
	return func(pods []corev1.Pod) bool {
		if len(pods) != n {
			return false
		}
		for _, p := range pods {
			if p.Status.Phase != corev1.PodRunning || !podReady(&p) || p.Spec.NodeName == "" || p.Status.PodIP == "" {
				return false
			}
		}
		return true
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func deploymentCondition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == typ {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == typ && j.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func names(pods []corev1.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name+"@"+p.Spec.NodeName+"("+string(p.Status.Phase)+")")
	}
	return strings.Join(out, ", ")
}

func cidrContains(t *testing.T, cidr, ip string) bool {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatalf("bad CIDR %q: %v", cidr, err)
	}
	a, err := netip.ParseAddr(ip)
	return err == nil && p.Contains(a)
}
