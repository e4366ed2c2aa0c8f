package localpath

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Event reasons, as external-provisioner names them.
const (
	reasonProvisioning          = "Provisioning"
	reasonProvisioningSucceeded = "ProvisioningSucceeded"
	reasonProvisioningFailed    = "ProvisioningFailed"
	reasonVolumeFailedDelete    = "VolumeFailedDelete"
)

// reconciler makes the cluster match the claims and volumes of one run of
// the controller: it reads from informer caches and writes through client.
type reconciler struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	cfg      Config

	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	nodes   corelisters.NodeLister
	classes storagelisters.StorageClassLister
	pods    corelisters.PodLister // cleanup pods only

	queue workqueue.TypedRateLimitingInterface[key]
}

// processNext reconciles one key; it returns false once the queue is shut down.
func (r *reconciler) processNext(ctx context.Context) bool {
	k, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(k)
	if err := r.sync(ctx, k); err != nil {
		r.log.Warn("reconcile failed; will retry", "key", k.String(), "err", err)
		r.queue.AddRateLimited(k)
		return true
	}
	r.queue.Forget(k)
	return true
}

func (r *reconciler) sync(ctx context.Context, k key) error {
	if k.kind == claimKind {
		return r.syncClaim(ctx, k.name)
	}
	return r.syncVolume(ctx, k.name)
}

// syncClaim provisions a volume for the claim if it waits for one.
func (r *reconciler) syncClaim(ctx context.Context, name string) error {
	ns, n, err := cache.SplitMetaNamespaceKey(name)
	if err != nil {
		utilruntime.HandleError(err)
		return nil
	}
	claim, err := r.claims.PersistentVolumeClaims(ns).Get(n)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	class, err := r.classes.Get(claimClass(claim))
	if apierrors.IsNotFound(err) {
		return nil // the PV controller reports a missing class
	}
	if err != nil {
		return err
	}
	nodeName, ok := selectedNode(claim, class)
	if !ok {
		return nil
	}
	pvName := volumeName(claim)
	if _, err := r.volumes.Get(pvName); err == nil {
		return nil // provisioned; the PV controller binds it
	}
	// The cache may lag behind a volume this controller just created.
	if _, err := r.client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return err
	}

	node, err := r.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return r.reschedule(ctx, claim, class, nodeName)
	}
	if err != nil {
		return err
	}
	pv, err := newVolume(claim, class, node)
	if err != nil {
		// Nothing a retry would change: wait for the claim or node to change.
		r.recorder.Eventf(claim, corev1.EventTypeWarning, reasonProvisioningFailed,
			"failed to provision volume with StorageClass %q: %v", class.Name, err)
		return nil
	}
	r.recorder.Eventf(claim, corev1.EventTypeNormal, reasonProvisioning,
		"External provisioner is provisioning volume for claim %q", name)
	if _, err := r.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		r.recorder.Eventf(claim, corev1.EventTypeWarning, reasonProvisioningFailed,
			"failed to provision volume with StorageClass %q: %v", class.Name, err)
		return fmt.Errorf("create PersistentVolume %s for claim %s: %w", pvName, name, err)
	}
	r.recorder.Eventf(claim, corev1.EventTypeNormal, reasonProvisioningSucceeded,
		"Successfully provisioned volume %s", pvName)
	r.log.Info("provisioned volume", "claim", name, "volume", pvName, "node", nodeName, "path", pv.Spec.HostPath.Path)
	return nil
}

// reschedule removes a selected node that no longer exists from the claim,
// so that the scheduler picks another one.
func (r *reconciler) reschedule(ctx context.Context, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node string) error {
	r.recorder.Eventf(claim, corev1.EventTypeWarning, reasonProvisioningFailed,
		"failed to provision volume with StorageClass %q: selected node %q does not exist; rescheduling", class.Name, node)
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, annSelectedNode))
	_, err := r.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Patch(ctx, claim.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove the selected node of claim %s/%s: %w", claim.Namespace, claim.Name, err)
	}
	return nil
}

// syncVolume deletes a released volume provisioned here: its directory
// first (through a cleanup pod on its node), then the cleanup pod, then the
// PersistentVolume. A cleanup pod whose volume is gone is deleted.
func (r *reconciler) syncVolume(ctx context.Context, name string) error {
	pv, err := r.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return r.deleteCleanupPod(ctx, name)
	}
	if err != nil {
		return err
	}
	if !needsDelete(pv) {
		return nil
	}
	host, ok := pinnedHost(pv)
	if !ok {
		r.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete,
			"the volume has no nodeAffinity kubernetes.io/hostname In [<node>]: cannot tell which node holds its directory")
		return nil // a volume that needs a person
	}
	node, err := r.nodeNamed(host)
	if err != nil {
		return err
	}
	if node == "" {
		r.log.Info("the node of a released volume is gone; deleting it without cleanup", "volume", name)
		if err := r.deleteCleanupPod(ctx, name); err != nil {
			return err
		}
		return r.deleteVolume(ctx, pv)
	}
	parent, dir, err := cleanupTarget(pv)
	if err != nil {
		r.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return nil // a volume that needs a person
	}

	pod, err := r.pods.Pods(r.cfg.Namespace).Get(cleanupPodName(name))
	switch {
	case apierrors.IsNotFound(err):
		pod = cleanupPod(pv, r.cfg.Namespace, r.cfg.CleanupImage, node, parent, dir)
		if _, err := r.client.CoreV1().Pods(r.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create cleanup pod %s/%s: %w", r.cfg.Namespace, pod.Name, err)
		}
		r.log.Info("removing the directory of a released volume", "volume", name, "node", node, "path", pv.Spec.HostPath.Path)
		return nil // the pod's updates bring the volume back
	case err != nil:
		return err
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		if err := r.deleteCleanupPod(ctx, name); err != nil {
			return err
		}
		return r.deleteVolume(ctx, pv)
	case corev1.PodFailed:
		r.recorder.Eventf(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete,
			"cleanup pod %s/%s failed on node %s: %s; retrying", pod.Namespace, pod.Name, node, podFailure(pod))
		if err := r.deleteCleanupPod(ctx, name); err != nil {
			return err
		}
		return fmt.Errorf("cleanup pod %s/%s failed", pod.Namespace, pod.Name)
	default:
		return nil // still running
	}
}

// nodeNamed is the name of the node whose kubernetes.io/hostname is host,
// "" if there is no such node.
func (r *reconciler) nodeNamed(host string) (string, error) {
	if _, err := r.nodes.Get(host); err == nil {
		return host, nil
	} else if !apierrors.IsNotFound(err) {
		return "", err
	}
	nodes, err := r.nodes.List(labels.SelectorFromSet(labels.Set{labelHostname: host}))
	if err != nil || len(nodes) == 0 {
		return "", err
	}
	return nodes[0].Name, nil
}

func (r *reconciler) deleteCleanupPod(ctx context.Context, volume string) error {
	name := cleanupPodName(volume)
	if _, err := r.pods.Pods(r.cfg.Namespace).Get(name); apierrors.IsNotFound(err) {
		return nil
	}
	err := r.client.CoreV1().Pods(r.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete cleanup pod %s/%s: %w", r.cfg.Namespace, name, err)
	}
	return nil
}

func (r *reconciler) deleteVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	err := r.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pv.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete PersistentVolume %s: %w", pv.Name, err)
	}
	r.log.Info("deleted released volume", "volume", pv.Name)
	return nil
}

// podFailure summarises why a pod failed.
func podFailure(pod *corev1.Pod) string {
	for _, s := range pod.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil {
			return fmt.Sprintf("exit code %d %s %s", t.ExitCode, t.Reason, t.Message)
		}
	}
	if pod.Status.Message != "" {
		return pod.Status.Message
	}
	return "phase Failed"
}
