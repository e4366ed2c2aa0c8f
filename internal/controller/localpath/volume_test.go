package localpath

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/utils/ptr"
)

func TestStorageClass(t *testing.T) {
	c := StorageClass()
	if c.Name != "local-path" || c.Provisioner != "skiff.dev/local-path" ||
		*c.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		*c.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		c.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Errorf("StorageClass() = %+v", c)
	}
}

func TestSelectedNode(t *testing.T) {
	now := metav1.Now()
	deleting := makeClaim("c").Node("n1").Obj()
	deleting.DeletionTimestamp = &now
	for _, tc := range []struct {
		name     string
		claim    *corev1.PersistentVolumeClaim
		class    *storagev1.StorageClass
		wantNode string
	}{
		{"scheduled", makeClaim("c").Node("n1").Obj(), StorageClass(), "n1"},
		{"beta provisioner annotation", makeClaim("c").Node("n1").NoAnn(annStorageProvisioner).Ann(annBetaStorageProvisoner, ProvisionerName).Obj(), StorageClass(), "n1"},
		{"class of another name served here", makeClaim("c").Class("fast").Node("n1").Obj(), otherClass("fast", ProvisionerName), "n1"},
		{"not yet scheduled", makeClaim("c").Obj(), StorageClass(), ""},
		{"not yet handed over by the PV controller", makeClaim("c").Node("n1").NoAnn(annStorageProvisioner).Obj(), StorageClass(), ""},
		{"handed to another provisioner", makeClaim("c").Node("n1").Ann(annStorageProvisioner, "ebs.csi.aws.com").Obj(), StorageClass(), ""},
		{"class of another provisioner", makeClaim("c").Class("ebs").Node("n1").Obj(), otherClass("ebs", "ebs.csi.aws.com"), ""},
		{"no such class", makeClaim("c").Node("n1").Obj(), nil, ""},
		{"already bound", makeClaim("c").Node("n1").Bound("pvc-x").Obj(), StorageClass(), ""},
		{"being deleted", deleting, StorageClass(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, ok := selectedNode(tc.claim, tc.class)
			if node != tc.wantNode || ok != (tc.wantNode != "") {
				t.Errorf("selectedNode = %q, %v; want %q", node, ok, tc.wantNode)
			}
		})
	}
}

func TestClaimClass(t *testing.T) {
	if got := claimClass(makeClaim("c").Class("fast").Obj()); got != "fast" {
		t.Errorf("spec.storageClassName: got %q", got)
	}
	if got := claimClass(makeClaim("c").Ann(annBetaStorageClass, "old").Obj()); got != "old" {
		t.Errorf("beta annotation wins, as in Kubernetes: got %q", got)
	}
}

func TestStorageDir(t *testing.T) {
	for _, tc := range []struct {
		name, ann, want string
		wantErr         bool
	}{
		{"annotated", "/tmp/agent/storage", "/tmp/agent/storage", false},
		{"cleaned", "/tmp/agent//storage/", "/tmp/agent/storage", false},
		{"not annotated", "", DefaultStorageDir, false},
		{"relative", "storage", "", true},
		{"root", "/", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storageDir(makeNode("n1", tc.ann))
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("storageDir = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestNewVolume(t *testing.T) {
	claim := makeClaim("data-web-0").Node("n1").Obj()
	claim.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
	node := makeNode("n1", "/tmp/agent/storage")
	node.Labels[labelHostname] = "host-1" // the label, not the name, pins the volume
	got, err := newVolume(claim, StorageClass(), node)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "pvc-uid-data-web-0",
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": "skiff.dev/local-path"},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: "default", Name: "data-web-0", UID: "uid-data-web-0",
			},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              "local-path",
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/tmp/agent/storage/pvc-uid-data-web-0_default_data-web-0",
				Type: ptr.To(corev1.HostPathDirectoryOrCreate),
			}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"host-1"},
				}}}},
			}},
		},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("newVolume: (-got +want)\n%s", diff.Diff(got, want))
	}

	retain := StorageClass()
	retain.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRetain)
	if pv, _ := newVolume(claim, retain, node); pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim policy %q, want the class's Retain", pv.Spec.PersistentVolumeReclaimPolicy)
	}
}

func TestNewVolumeRefuses(t *testing.T) {
	noSize := makeClaim("c").Obj()
	noSize.Spec.Resources.Requests = nil
	for _, tc := range []struct {
		name  string
		claim *corev1.PersistentVolumeClaim
		node  *corev1.Node
	}{
		{"block mode", makeClaim("c").Block().Obj(), makeNode("n1", "")},
		{"no size", noSize, makeNode("n1", "")},
		{"bad storage dir", makeClaim("c").Obj(), makeNode("n1", "relative/dir")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if pv, err := newVolume(tc.claim, StorageClass(), tc.node); err == nil {
				t.Errorf("newVolume = %v, want an error", pv.Name)
			}
		})
	}
}
