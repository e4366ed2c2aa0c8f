package localpath

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNeedsDelete(t *testing.T) {
	retained := releasedVolume()
	retained.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	bound := releasedVolume()
	bound.Status.Phase = corev1.VolumeBound
	foreign := releasedVolume()
	foreign.Annotations[annProvisionedBy] = "rancher.io/local-path"
	deleting := releasedVolume()
	deleting.DeletionTimestamp = &metav1.Time{}
	for _, tc := range []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{"released, Delete", releasedVolume(), true},
		{"being deleted", deleting, false},
		{"released, Retain", retained, false},
		{"bound", bound, false},
		{"provisioned by another", foreign, false},
	} {
		if got := needsDelete(tc.pv); got != tc.want {
			t.Errorf("%s: needsDelete = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPinnedHost(t *testing.T) {
	if h, ok := pinnedHost(releasedVolume()); h != "n1" || !ok {
		t.Errorf("pinnedHost = %q, %v; want n1", h, ok)
	}
	pv := releasedVolume()
	pv.Spec.NodeAffinity = nil
	if _, ok := pinnedHost(pv); ok {
		t.Error("a volume without nodeAffinity is pinned to no host")
	}
}

func TestCleanupTarget(t *testing.T) {
	for _, tc := range []struct {
		name, path, parent, dir string
	}{
		{"made here", "/data/storage/pvc-uid-web-0_default_web-0", "/data/storage", "pvc-uid-web-0_default_web-0"},
		{"another volume's directory", "/data/storage/pvc-other_default_web-0", "", ""},
		{"the storage dir itself", "/data/storage", "", ""},
		{"below root", "/pvc-uid-web-0_default_web-0", "", ""},
		{"relative", "storage/pvc-uid-web-0_default_web-0", "", ""},
		{"unclean", "/data/storage/../etc/pvc-uid-web-0_default_web-0/", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := releasedVolume()
			pv.Spec.HostPath.Path = tc.path
			parent, dir, err := cleanupTarget(pv)
			if parent != tc.parent || dir != tc.dir || (err != nil) != (tc.parent == "") {
				t.Errorf("cleanupTarget(%q) = %q, %q, %v; want %q, %q", tc.path, parent, dir, err, tc.parent, tc.dir)
			}
		})
	}
	pv := releasedVolume()
	pv.Spec.HostPath = nil
	pv.Spec.Local = &corev1.LocalVolumeSource{Path: "/data/storage/pvc-uid-web-0_default_web-0"}
	if _, _, err := cleanupTarget(pv); err == nil {
		t.Error("a local volume is not cleaned up")
	}
}

func TestCleanupPod(t *testing.T) {
	p := cleanupPod(releasedVolume(), metav1.NamespaceSystem, DefaultCleanupImage, "n1", "/data/storage", "pvc-uid-web-0_default_web-0")
	s := p.Spec
	c := s.Containers[0]
	switch {
	case p.Name != "local-path-cleanup-pvc-uid-web-0" || p.Namespace != "kube-system":
		t.Errorf("name %s/%s", p.Namespace, p.Name)
	case p.Labels[labelCleanup] != "true" || p.Annotations[annCleanupVolume] != "pvc-uid-web-0":
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	case s.NodeName != "n1" || s.RestartPolicy != corev1.RestartPolicyNever:
		t.Errorf("nodeName %q restartPolicy %q", s.NodeName, s.RestartPolicy)
	case len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists || s.Tolerations[0].Key != "":
		t.Errorf("tolerations %+v, want one that tolerates every taint", s.Tolerations)
	case c.Image != "localhost/skiff/busybox:latest" || c.ImagePullPolicy != corev1.PullIfNotPresent:
		t.Errorf("image %s pull %s", c.Image, c.ImagePullPolicy)
	case len(c.Command) != 3 || c.Command[0] != "rm" || c.Command[1] != "-rf" || c.Command[2] != "/parent/pvc-uid-web-0_default_web-0":
		t.Errorf("command %q", c.Command)
	case len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/parent" ||
		len(s.Volumes) != 1 || s.Volumes[0].HostPath == nil || s.Volumes[0].HostPath.Path != "/data/storage":
		t.Errorf("mounts %+v volumes %+v", c.VolumeMounts, s.Volumes)
	}
}
