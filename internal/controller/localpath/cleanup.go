package localpath

import (
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Cleanup pods carry this label (the pod informer selects on it) and name
// the volume they clean in annCleanupVolume.
const (
	labelCleanup     = "storage.skiff.dev/local-path-cleanup"
	annCleanupVolume = "storage.skiff.dev/local-path-volume"
)

// provisionedHere reports whether this provisioner made the volume.
func provisionedHere(pv *corev1.PersistentVolume) bool {
	return pv.Annotations[annProvisionedBy] == ProvisionerName
}

// needsDelete reports whether a volume provisioned here is to be deleted:
// its claim is gone, its reclaim policy is Delete, and it is not being
// deleted already (after its cleanup, it waits for its pv-protection
// finalizer).
func needsDelete(pv *corev1.PersistentVolume) bool {
	return provisionedHere(pv) && pv.DeletionTimestamp == nil &&
		pv.Status.Phase == corev1.VolumeReleased &&
		pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete
}

// pinnedHost is the kubernetes.io/hostname value a volume's nodeAffinity
// pins it to.
func pinnedHost(pv *corev1.PersistentVolume) (string, bool) {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return "", false
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == labelHostname && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				return e.Values[0], true
			}
		}
	}
	return "", false
}

// cleanupTarget splits a volume's hostPath into the directory the cleanup
// pod mounts and the entry it removes there. It refuses any path this
// provisioner would not have made, so that a hand-edited volume can never
// make it remove something else.
func cleanupTarget(pv *corev1.PersistentVolume) (parent, dir string, err error) {
	if pv.Spec.HostPath == nil {
		return "", "", fmt.Errorf("volume %s is not a hostPath volume", pv.Name)
	}
	p := pv.Spec.HostPath.Path
	parent, dir = filepath.Dir(p), filepath.Base(p)
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || parent == "/" || !strings.HasPrefix(dir, pv.Name+"_") {
		return "", "", fmt.Errorf("volume %s: hostPath %q is not a directory this provisioner made (<storage dir>/%s_<namespace>_<claim>)", pv.Name, p, pv.Name)
	}
	return parent, dir, nil
}

// cleanupPodName is the name of the pod that removes a volume's directory.
func cleanupPodName(volume string) string { return "local-path-cleanup-" + volume }

// cleanupPod is the pod that removes the directory of pv on node.
func cleanupPod(pv *corev1.PersistentVolume, namespace, image, node, parent, dir string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        cleanupPodName(pv.Name),
			Namespace:   namespace,
			Labels:      map[string]string{labelCleanup: "true"},
			Annotations: map[string]string{annCleanupVolume: pv.Name},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{
				Name:            "cleanup",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"rm", "-rf", "/parent/" + dir},
				VolumeMounts:    []corev1.VolumeMount{{Name: "parent", MountPath: "/parent"}},
			}},
			Volumes: []corev1.Volume{{
				Name: "parent",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: parent,
					Type: ptr.To(corev1.HostPathDirectoryOrCreate),
				}},
			}},
		},
	}
}
