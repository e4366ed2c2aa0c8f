package node

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBadInput: pods that cannot start say why, the way a user reads it:
// an image the mirror does not have, a missing image with pull policy
// Never, an env var from a missing ConfigMap key, a volume from a missing
// Secret.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	if _, err := the.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"present": "yes"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod(t, ns, pod("noimage", container(func(c *corev1.Container) { c.Image = "localhost/skiff/does-not-exist:latest" })))
	createPod(t, ns, pod("neverpull", container(func(c *corev1.Container) {
		c.Image = "localhost/skiff/does-not-exist:v0"
		c.ImagePullPolicy = corev1.PullNever
	})))
	createPod(t, ns, pod("nokey", container(func(c *corev1.Container) {
		c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "absent"},
		}}}
	})))
	createPod(t, ns, pod("nosecret", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "absent"}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "s", MountPath: "/s"}}
	}))

	t.Run("image-missing-from-mirror", func(t *testing.T) {
		seen := map[string]bool{}
		waitPod(t, ns, "noimage", slow, "in ImagePullBackOff after ErrImagePull", func(p *corev1.Pod) bool {
			seen[waitingReason(p, "app")] = true
			return waitingReason(p, "app") == "ImagePullBackOff"
		})
		if msg := waitEvent(t, ns, "noimage", "Failed", 10*time.Second); !strings.Contains(msg, "does-not-exist") {
			t.Errorf("Failed event says %q, want it to name the image", msg)
		}
		waitEvent(t, ns, "noimage", "BackOff", 10*time.Second)
		t.Logf("waiting reasons seen: %v", seen)
	})
	t.Run("pull-policy-never", func(t *testing.T) {
		p := waitPod(t, ns, "neverpull", podStart, "ErrImageNeverPull", func(p *corev1.Pod) bool {
			return waitingReason(p, "app") == "ErrImageNeverPull"
		})
		if msg := containerStatus(p, "app").State.Waiting.Message; !strings.Contains(msg, "not present with pull policy of Never") {
			t.Errorf("waiting message %q", msg)
		}
		waitEvent(t, ns, "neverpull", "ErrImageNeverPull", 10*time.Second)
	})
	t.Run("missing-configmap-key", func(t *testing.T) {
		p := waitPod(t, ns, "nokey", podStart, "CreateContainerConfigError", func(p *corev1.Pod) bool {
			return waitingReason(p, "app") == "CreateContainerConfigError"
		})
		if msg := containerStatus(p, "app").State.Waiting.Message; !strings.Contains(msg, `couldn't find key absent in ConfigMap`) {
			t.Errorf("waiting message %q, want it to name the missing key", msg)
		}
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", p.Status.Phase)
		}
	})
	t.Run("missing-secret-volume", func(t *testing.T) {
		msg := waitEvent(t, ns, "nosecret", "FailedMount", podStart)
		if !strings.Contains(msg, `secret "absent" not found`) {
			t.Errorf("FailedMount event says %q, want it to name the secret", msg)
		}
		p := getPod(t, ns, "nosecret")
		if p.Status.Phase != corev1.PodPending || waitingReason(p, "app") != "ContainerCreating" {
			t.Errorf("phase %s, waiting reason %q; want Pending, ContainerCreating", p.Status.Phase, waitingReason(p, "app"))
		}
		if out := kubectl(t, "get", "pod", "nosecret", "-n", ns, "--no-headers").Stdout; !strings.Contains(out, "ContainerCreating") {
			t.Errorf("kubectl get pod shows %q, want ContainerCreating", out)
		}
	})
}
