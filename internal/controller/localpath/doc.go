// Package localpath is skiff's built-in local-path provisioner (as k3s ships
// one): it makes PersistentVolumeClaims work out of the box by giving each
// claim a directory on the node its pod was scheduled to.
//
// It owns:
//
//   - the StorageClass `local-path` (StorageClass returns it; the server
//     creates it at first start), the cluster's default class, with
//     provisioner skiff.dev/local-path, volumeBindingMode
//     WaitForFirstConsumer and reclaimPolicy Delete;
//   - provisioning: a claim of a class whose provisioner is
//     skiff.dev/local-path, once the PV controller has marked it for this
//     provisioner (annotation volume.kubernetes.io/storage-provisioner) and
//     the scheduler has picked a node (volume.kubernetes.io/selected-node),
//     gets a hostPath PersistentVolume named pvc-<claim uid> at
//     <node storage dir>/<pv name>_<namespace>_<claim name>, pinned to that
//     node by nodeAffinity and pre-bound to the claim through claimRef; the
//     PV controller then binds the two and the kubelet creates the directory
//     (hostPath type DirectoryOrCreate);
//   - deletion: a PersistentVolume it provisioned that is Released with
//     reclaim policy Delete gets a cleanup pod on its node (busybox, `rm -rf`
//     of the directory through a hostPath mount of its parent); once the pod
//     has succeeded the pod and then the PersistentVolume are deleted. A
//     volume whose node no longer exists is deleted without cleanup.
//
// The node's storage directory is the node annotation
// storage.skiff.dev/local-path-dir, which skiff's agent sets to
// <agent data dir>/storage after the kubelet has registered the node; a node
// without it (a kubelet skiff does not run) uses /var/lib/skiff/storage. A
// claim scheduled before the annotation is set gets the default directory.
//
// It follows the external-provisioner conventions: Events Provisioning,
// ProvisioningSucceeded and ProvisioningFailed on the claim,
// VolumeFailedDelete on the volume; a selected node that no longer exists is
// removed from the claim so that the scheduler picks another.
//
// Every step is level-based and idempotent (the PV and the cleanup pod have
// names derived from the claim's UID), so the controller may stop at any
// moment and the next reconcile finishes what was left half done. With
// Config.LeaseName set it runs only while it holds that Lease in kube-system,
// so two servers never both run it.
//
// It does not own the binding of claims to volumes (the PV controller in
// kube-controller-manager does), capacity accounting (a volume is a plain
// directory on the node's disk: its size is not enforced), block volumes, or
// the directory's creation (the kubelet's).
package localpath
