package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// readyLine is what `skiff server` logs once it serves and bootstrap is done.
const readyLine = "skiff server is ready; the admin kubeconfig is at "

// TestLocalPathStatefulSet: a StatefulSet's volumeClaimTemplate without a
// storageClassName gets a local-path volume in the agent's storage
// directory, the data survives the pod, and deleting the claim removes the
// volume and its directory.
func TestLocalPathStatefulSet(t *testing.T) {
	c := startCluster(t)
	ctx := e2eutil.Context(t, 3*time.Minute)
	client := c.client
	storageDir := filepath.Join(c.dataDir, "agent", "storage")
	step := stepper(t)

	sc, err := client.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("StorageClass local-path: %v", err)
	}
	if sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" || sc.Provisioner != "skiff.dev/local-path" {
		t.Fatalf("StorageClass local-path is not the default class of skiff.dev/local-path: %+v", sc)
	}

	ns := "storage-e2e"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "web"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	claim := waitFor(t, ctx, "claim data-web-0 Bound", func(ctx context.Context) (*corev1.PersistentVolumeClaim, bool, error) {
		pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-web-0", metav1.GetOptions{})
		return pvc, err == nil && pvc.Status.Phase == corev1.ClaimBound, ignoreNotFound(err)
	})
	if got := ptr.Deref(claim.Spec.StorageClassName, ""); got != "local-path" {
		t.Errorf("claim's class %q, want the default local-path", got)
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(storageDir, fmt.Sprintf("%s_%s_%s", pv.Name, ns, "data-web-0"))
	if pv.Name != "pvc-"+string(claim.UID) || pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir ||
		pv.Annotations["pv.kubernetes.io/provisioned-by"] != "skiff.dev/local-path" ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("volume %s: hostPath %+v, annotations %v, reclaim %s; want hostPath %s", pv.Name, pv.Spec.HostPath, pv.Annotations, pv.Spec.PersistentVolumeReclaimPolicy, dir)
	}
	first := waitFor(t, ctx, "pod web-0 Running", func(ctx context.Context) (*corev1.Pod, bool, error) {
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		return pod, err == nil && podReady(pod), ignoreNotFound(err)
	})
	waitFile(t, ctx, filepath.Join(dir, "first"))
	step("provisioned, bound and written by the first pod")
	reasons := eventReasons(ctx, t, client, ns, "data-web-0")
	for _, want := range []string{"Provisioning", "ProvisioningSucceeded"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("claim events %s lack %s", reasons, want)
		}
	}

	if err := client.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a new pod web-0 Running", func(ctx context.Context) (*corev1.Pod, bool, error) {
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		return pod, err == nil && pod.UID != first.UID && podReady(pod), ignoreNotFound(err)
	})
	waitFile(t, ctx, filepath.Join(dir, "seen")) // written only by a pod that found /data/first
	step("the second pod saw the first pod's file")

	if err := client.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data-web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "volume "+pv.Name+" deleted", func(ctx context.Context) (struct{}, bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return struct{}{}, apierrors.IsNotFound(err), ignoreNotFound(err)
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s is still there after its volume was deleted (%v)", dir, err)
	}
	waitFor(t, ctx, "cleanup pods gone", func(ctx context.Context) (struct{}, bool, error) {
		pods, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "storage.skiff.dev/local-path-cleanup"})
		return struct{}{}, err == nil && len(pods.Items) == 0, err
	})
	step("claim deleted: volume, directory and cleanup pod gone")
}

// statefulSet has one replica with a 1Gi claim template of no class; its
// pod writes /data/first, or /data/seen when it finds /data/first.
func statefulSet(name string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Replicas:    ptr.To(int32(1)),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					Containers: []corev1.Container{{
						Name:            "app",
						Image:           "localhost/skiff/busybox:latest",
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"sh", "-c",
							"if [ -f /data/first ]; then hostname > /data/seen; else hostname > /data/first; fi; exec sleep 3600"},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
					},
				},
			}},
		},
	}
}

// cluster is a `skiff server` subprocess with its node agent.
type cluster struct {
	dataDir  string
	nodeName string
	client   kubernetes.Interface
}

// startCluster starts `skiff server` (with its agent) on a t.TempDir()
// data directory and free ports, and waits until its node is Ready and has
// recorded its storage directory. A t.Cleanup stops the server with
// SIGTERM, runs `skiff agent teardown` and shows the log's tail on failure.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the node agent runs containerd, mounts and creates cgroups")
	}
	images, err := filepath.Abs(filepath.Join("..", "..", "..", "images", "out"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(images, "busybox.tar")); err != nil {
		t.Skipf("skiff's images are not built (run make images): %v", err)
	}
	bin := e2eutil.Binary(t)
	dir := t.TempDir()
	c := &cluster{dataDir: filepath.Join(dir, "data"), nodeName: "storage-e2e-" + randomSuffix()}
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server",
		"--data-dir", c.dataDir,
		"--https-listen-port", strconv.Itoa(e2eutil.FreePort(t)),
		"--bind-address", "127.0.0.1",
		"--kubelet-port", strconv.Itoa(e2eutil.FreePort(t)),
		"--node-name", c.nodeName,
		"--images-dir", images,
		// kube-proxy's nftables table is the machine's; this test needs no Services.
		"--disable-kube-proxy",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a kill reaches all of it
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once cmd has been waited for
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		began := time.Now()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
			t.Logf("skiff server stopped in %s after SIGTERM", time.Since(began).Round(time.Millisecond))
		case <-time.After(time.Minute):
			t.Errorf("skiff server still running a minute after SIGTERM; killing it")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "agent", "teardown", "--data-dir", filepath.Join(c.dataDir, "agent")).CombinedOutput()
		if err != nil {
			t.Errorf("skiff agent teardown: %v\n%s", err, out)
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("last lines of %s:\n%s", logPath, tail(data, 60))
		}
	})

	began := time.Now()
	for {
		data, _ := os.ReadFile(logPath)
		if bytes.Contains(data, []byte(readyLine)) {
			break
		}
		select {
		case <-exited:
			t.Fatalf("skiff server exited before it was ready")
		default:
		}
		if time.Since(began) > 2*time.Minute {
			t.Fatalf("skiff server not ready within 2m")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.dataDir, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 30 * time.Second
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := e2eutil.Context(t, 2*time.Minute)
	// The storage directory must be recorded before a pod is scheduled to
	// the node, or its volume lands in /var/lib/skiff/storage.
	want := filepath.Join(c.dataDir, "agent", "storage")
	waitFor(t, ctx, "node Ready with its storage directory", func(ctx context.Context) (*corev1.Node, bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(ctx, c.nodeName, metav1.GetOptions{})
		return n, err == nil && nodeReady(n) && n.Annotations["storage.skiff.dev/local-path-dir"] == want, ignoreNotFound(err)
	})
	t.Logf("skiff server with node %s ready in %s", c.nodeName, time.Since(began).Round(time.Millisecond))
	return c
}

// waitFor polls cond every 200ms until it is done, fails, or ctx ends.
func waitFor[T any](t *testing.T, ctx context.Context, what string, cond func(context.Context) (T, bool, error)) T {
	t.Helper()
	var last T
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		v, done, err := cond(ctx)
		last = v
		return done, err
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last seen: %+v)", what, err, last)
	}
	return last
}

// waitFile waits for a file on this machine's disk (the node's).
func waitFile(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	waitFor(t, ctx, "file "+path, func(context.Context) (string, bool, error) {
		data, err := os.ReadFile(path)
		return string(data), err == nil && len(data) > 0, nil
	})
}

// stepper logs each step with the time since the previous one.
func stepper(t *testing.T) func(string) {
	last := time.Now()
	return func(what string) {
		t.Logf("%-60s %s", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
}

func eventReasons(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs.Items {
		reasons = append(reasons, e.Reason)
	}
	return strings.Join(reasons, ",")
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
