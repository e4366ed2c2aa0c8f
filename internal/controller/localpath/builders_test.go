package localpath

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Test builders: makeClaim("web-0").Node("n1").Obj() and so on.

type claimBuilder struct{ c *corev1.PersistentVolumeClaim }

// makeClaim is a 1Gi ReadWriteOnce claim in namespace "default" of class
// local-path, handed to this provisioner by the PV controller.
func makeClaim(name string) *claimBuilder {
	return &claimBuilder{&corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   "default",
			UID:         types.UID("uid-" + name),
			Annotations: map[string]string{annStorageProvisioner: ProvisionerName},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(ClassName),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			},
		},
	}}
}

func (b *claimBuilder) Node(n string) *claimBuilder { return b.Ann(annSelectedNode, n) }
func (b *claimBuilder) Ann(k, v string) *claimBuilder {
	b.c.Annotations[k] = v
	return b
}
func (b *claimBuilder) NoAnn(k string) *claimBuilder {
	delete(b.c.Annotations, k)
	return b
}
func (b *claimBuilder) Class(c string) *claimBuilder {
	b.c.Spec.StorageClassName = ptr.To(c)
	return b
}
func (b *claimBuilder) Bound(pv string) *claimBuilder {
	b.c.Spec.VolumeName = pv
	return b
}
func (b *claimBuilder) Block() *claimBuilder {
	b.c.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	return b
}
func (b *claimBuilder) Obj() *corev1.PersistentVolumeClaim { return b.c }

// makeNode is a node whose hostname label is its name.
func makeNode(name string, storageDir string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{labelHostname: name},
	}}
	if storageDir != "" {
		n.Annotations = map[string]string{NodeStorageDirAnnotation: storageDir}
	}
	return n
}

func otherClass(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
}

// releasedVolume is what newVolume makes for claim "web-0" on node n1 with
// storage dir /data/storage, after the claim was deleted.
func releasedVolume() *corev1.PersistentVolume {
	pv, err := newVolume(makeClaim("web-0").Node("n1").Obj(), StorageClass(), makeNode("n1", "/data/storage"))
	if err != nil {
		panic(err)
	}
	pv.UID = "pv-uid"
	pv.Status.Phase = corev1.VolumeReleased
	return pv
}

func cleanupPodIn(phase corev1.PodPhase) *corev1.Pod {
	pv := releasedVolume()
	p := cleanupPod(pv, metav1.NamespaceSystem, DefaultCleanupImage, "n1", "/data/storage", "pvc-uid-web-0_default_web-0")
	p.Status.Phase = phase
	return p
}
