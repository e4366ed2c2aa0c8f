package localpath

import (
	"errors"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The names this provisioner is known by.
const (
	// ProvisionerName is the provisioner field of the classes it serves.
	ProvisionerName = "skiff.dev/local-path"
	// ClassName is the StorageClass the server creates.
	ClassName = "local-path"
	// NodeStorageDirAnnotation on a Node names the directory its volumes
	// are created in; DefaultStorageDir applies without it.
	NodeStorageDirAnnotation = "storage.skiff.dev/local-path-dir"
	DefaultStorageDir        = "/var/lib/skiff/storage"
)

// Annotations and labels of the Kubernetes volume machinery.
const (
	annDefaultClass          = "storageclass.kubernetes.io/is-default-class"
	annBetaStorageClass      = "volume.beta.kubernetes.io/storage-class"
	annStorageProvisioner    = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisoner = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode          = "volume.kubernetes.io/selected-node"
	annProvisionedBy         = "pv.kubernetes.io/provisioned-by"
	labelHostname            = "kubernetes.io/hostname"
)

// StorageClass is the class `local-path`: the cluster's default class.
func StorageClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ClassName,
			Annotations: map[string]string{annDefaultClass: "true"},
		},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// claimClass is the name of the claim's StorageClass ("" for none).
func claimClass(claim *corev1.PersistentVolumeClaim) string {
	if c, ok := claim.Annotations[annBetaStorageClass]; ok {
		return c
	}
	return ptr.Deref(claim.Spec.StorageClassName, "")
}

// selectedNode returns the node a claim waits to be provisioned on, if it
// should be provisioned by this provisioner now: the claim is unbound, its
// class is served here, the PV controller has handed it to this provisioner,
// and the scheduler has picked a node. class may be nil (no such class).
func selectedNode(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) (string, bool) {
	if claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil {
		return "", false
	}
	if class == nil || class.Provisioner != ProvisionerName {
		return "", false
	}
	p, ok := claim.Annotations[annStorageProvisioner]
	if !ok {
		p = claim.Annotations[annBetaStorageProvisoner]
	}
	if p != ProvisionerName {
		return "", false
	}
	node := claim.Annotations[annSelectedNode]
	return node, node != ""
}

// volumeName is the name of the PersistentVolume provisioned for a claim.
func volumeName(claim *corev1.PersistentVolumeClaim) string {
	return "pvc-" + string(claim.UID)
}

// storageDir is the directory a node keeps its local-path volumes in.
func storageDir(node *corev1.Node) (string, error) {
	dir, ok := node.Annotations[NodeStorageDirAnnotation]
	if !ok {
		return DefaultStorageDir, nil
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) == "/" {
		return "", fmt.Errorf("node %s: annotation %s=%q is not an absolute directory below /", node.Name, NodeStorageDirAnnotation, dir)
	}
	return filepath.Clean(dir), nil
}

// hostnameOf is the value of the node's kubernetes.io/hostname label, which
// volumes are pinned to; the node name when the label is absent.
func hostnameOf(node *corev1.Node) string {
	if h := node.Labels[labelHostname]; h != "" {
		return h
	}
	return node.Name
}

// newVolume is the PersistentVolume that satisfies claim on node.
func newVolume(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node *corev1.Node) (*corev1.PersistentVolume, error) {
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil, errors.New("the claim requests no storage size")
	}
	if m := claim.Spec.VolumeMode; m != nil && *m == corev1.PersistentVolumeBlock {
		return nil, errors.New("block volumes are not supported; only volumeMode Filesystem")
	}
	if len(claim.Spec.AccessModes) == 0 {
		return nil, errors.New("the claim names no access modes")
	}
	dir, err := storageDir(node)
	if err != nil {
		return nil, err
	}
	name := volumeName(claim)
	reclaim := ptr.Deref(class.ReclaimPolicy, corev1.PersistentVolumeReclaimDelete)
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisionedBy: ProvisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes: append([]corev1.PersistentVolumeAccessMode(nil), claim.Spec.AccessModes...),
			ClaimRef: &corev1.ObjectReference{
				Kind:       "PersistentVolumeClaim",
				APIVersion: "v1",
				Namespace:  claim.Namespace,
				Name:       claim.Name,
				UID:        claim.UID,
			},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			MountOptions:                  class.MountOptions,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{
					Path: filepath.Join(dir, name+"_"+claim.Namespace+"_"+claim.Name),
					Type: ptr.To(corev1.HostPathDirectoryOrCreate),
				},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{
				Required: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{
						MatchExpressions: []corev1.NodeSelectorRequirement{{
							Key:      labelHostname,
							Operator: corev1.NodeSelectorOpIn,
							Values:   []string{hostnameOf(node)},
						}},
					}},
				},
			},
		},
	}, nil
}
