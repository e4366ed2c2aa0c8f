package node

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestVolumes: configMap, secret, downwardAPI, projected and emptyDir (disk
// and memory) volumes hold what they should, read with kubectl exec.
func TestVolumes(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createConfigAndSecret(t, ns)
	vol := func(name string, src corev1.VolumeSource) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: src}
	}
	p := pod("vols", busybox("sleep 3600"), label("tier", "test"), func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{
			vol("cm", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}),
			vol("sec", corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}),
			vol("down", corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			}}}),
			vol("proj", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "color", Path: "cm-color"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Items: []corev1.KeyToPath{{Key: "password", Path: "sec-password"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			}}}),
			vol("disk", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}),
			vol("mem", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}),
		}
		for _, v := range p.Spec.Volumes {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: "/v/" + v.Name})
		}
	})
	createPod(t, ns, p)
	waitRunning(t, ns, "vols")

	for _, c := range []struct{ file, want string }{
		{"/v/cm/color", "blue"},
		{"/v/sec/password", "s3cret"},
		{"/v/down/name", "vols"},
		{"/v/proj/cm-color", "blue"},
		{"/v/proj/sec-password", "s3cret"},
		{"/v/proj/ns", ns},
	} {
		if got := execIn(t, ns, "vols", "", "cat", c.file); got != c.want {
			t.Errorf("cat %s = %q, want %q", c.file, got, c.want)
		}
	}
	if got := execIn(t, ns, "vols", "", "cat", "/v/down/labels"); !strings.Contains(got, `tier="test"`) {
		t.Errorf("downwardAPI labels file = %q, want it to hold tier=\"test\"", got)
	}
	for _, dir := range []string{"disk", "mem"} {
		out := execIn(t, ns, "vols", "", "sh", "-c", "echo written > /v/"+dir+"/f && cat /v/"+dir+"/f")
		if out != "written\n" {
			t.Errorf("emptyDir %s: write and read back gave %q", dir, out)
		}
	}
	mounts := execIn(t, ns, "vols", "", "cat", "/proc/mounts")
	fsType := func(path string) string {
		for _, l := range strings.Split(mounts, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[1] == path {
				return f[2]
			}
		}
		return ""
	}
	if got := fsType("/v/mem"); got != "tmpfs" {
		t.Errorf("emptyDir medium Memory mounted as %q, want tmpfs", got)
	}
	if got := fsType("/v/disk"); got == "tmpfs" || got == "" {
		t.Errorf("emptyDir on disk mounted as %q, want a disk filesystem", got)
	}
	if got := fsType("/v/sec"); got != "tmpfs" {
		t.Errorf("secret volume mounted as %q, want tmpfs", got)
	}
}

// TestEnv: env values, fieldRef, resourceFieldRef, configMapKeyRef,
// secretKeyRef and envFrom, as `env` in the container prints them.
func TestEnv(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createConfigAndSecret(t, ns)
	p := pod("env", busybox("sleep 3600"), container(func(c *corev1.Container) {
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: mustQuantity("64Mi"), corev1.ResourceCPU: mustQuantity("250m")}
		c.Env = []corev1.EnvVar{
			{Name: "PLAIN", Value: "value with spaces"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: mustQuantity("1Mi")}}},
			{Name: "CPU_LIMIT_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: mustQuantity("1m")}}},
			{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
		}
		c.EnvFrom = []corev1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Prefix: "SEC_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
		}
	}))
	createPod(t, ns, p)
	running := waitRunning(t, ns, "env")
	env := map[string]string{}
	for _, l := range strings.Split(execIn(t, ns, "env", "", "env"), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{
		"PLAIN":        "value with spaces",
		"POD_NAME":     "env",
		"POD_IP":       running.Status.PodIP,
		"MEM_LIMIT_MI": "64",
		"CPU_LIMIT_M":  "250",
		"COLOR":        "blue",
		"PASSWORD":     "s3cret",
		"CM_color":     "blue",
		"CM_size":      "large",
		"SEC_password": "s3cret",
	} {
		if env[k] != want {
			t.Errorf("env %s=%q, want %q", k, env[k], want)
		}
	}
}

// TestSecurityContext: runAsUser is the process's uid, and a read-only root
// filesystem refuses writes outside volumes.
func TestSecurityContext(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("sec", busybox("sleep 3600"), container(func(c *corev1.Container) {
		c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000)), ReadOnlyRootFilesystem: ptr(true)}
	})))
	waitRunning(t, ns, "sec")
	if got := execIn(t, ns, "sec", "", "id", "-u"); got != "1000\n" {
		t.Errorf("id -u = %q, want 1000", got)
	}
	if got := execIn(t, ns, "sec", "", "id", "-g"); got != "3000\n" {
		t.Errorf("id -g = %q, want 3000", got)
	}
	r := kubectl(t, "exec", "-n", ns, "sec", "--", "touch", "/x")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
		t.Errorf("touch /x on a read-only root: exit %d stderr %q, want a failure saying Read-only file system", r.Code, r.Stderr)
	}
}

// TestOOMKilled: a container that allocates more than its 20Mi memory limit
// is killed by the kernel, and its status says OOMKilled with exit code 137.
func TestOOMKilled(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("oom", restartPolicy(corev1.RestartPolicyNever),
		busybox(`x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived; sleep 1`),
		container(func(c *corev1.Container) {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: mustQuantity("20Mi")}
		})))
	got := waitPod(t, ns, "oom", podStart, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	term := containerStatus(got, "app").State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("state.terminated = %+v, want reason OOMKilled, exit code 137", term)
	}
	if out := kubectl(t, "get", "pod", "oom", "-n", ns, "--no-headers").Stdout; !strings.Contains(out, "OOMKilled") {
		t.Errorf("kubectl get pod shows %q, want OOMKilled", out)
	}
}

// createConfigAndSecret creates ConfigMap cfg (color=blue, size=large) and
// Secret sec (password=s3cret).
func createConfigAndSecret(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := the.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"color": "blue", "size": "large"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := the.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
