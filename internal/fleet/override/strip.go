package override

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// droppedAnnotations are set by clients and controllers of the upstream
// and mean nothing, or something wrong, in another cluster.
var droppedAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"deployment.kubernetes.io/revision",
}

// droppedClaimAnnotations record a PersistentVolumeClaim's binding and
// provisioning in the upstream; downstream, selected-node would name a
// node that does not exist there and keep the claim from binding.
var droppedClaimAnnotations = []string{
	"pv.kubernetes.io/bind-completed",
	"pv.kubernetes.io/bound-by-controller",
	"volume.kubernetes.io/selected-node",
	"volume.kubernetes.io/storage-provisioner",
	"volume.beta.kubernetes.io/storage-provisioner",
}

// jobLabels are the labels the Job controller generates in a Job's
// selector and pod template.
var jobLabels = []string{
	"controller-uid",
	"batch.kubernetes.io/controller-uid",
	"batch.kubernetes.io/job-name",
	"job-name",
}

// Strip returns a copy of obj fit for applying to another cluster: its
// apiVersion, kind, metadata name, namespace, labels and annotations (less
// kubectl's last-applied-configuration and the Deployment revision), and
// every other top-level field but status. Other metadata (uid,
// resourceVersion, generation, creationTimestamp, managedFields,
// ownerReferences, finalizers, deletionTimestamp, selfLink, …) is dropped.
// Per kind it also drops what the upstream allocated or generated:
//   - Service: spec.clusterIP and spec.clusterIPs, and spec.ports[].nodePort
//     unless the type is NodePort or LoadBalancer;
//   - Job (batch): spec.selector and the generated pod template labels,
//     unless spec.manualSelector is true (then the user chose them);
//   - PersistentVolumeClaim: spec.volumeName and the binding and
//     provisioning annotations (pv.kubernetes.io/*,
//     volume.kubernetes.io/selected-node, …storage-provisioner).
func Strip(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	delete(out.Object, "status")

	meta := map[string]any{}
	if old, ok := out.Object["metadata"].(map[string]any); ok {
		for _, k := range []string{"name", "namespace", "labels", "annotations"} {
			if v, ok := old[k]; ok {
				meta[k] = v
			}
		}
	}
	out.Object["metadata"] = meta

	gvk := out.GroupVersionKind()
	dropAnnotations := droppedAnnotations
	switch {
	case gvk.Group == "" && gvk.Kind == "Service":
		stripService(out)
	case gvk.Group == "batch" && gvk.Kind == "Job":
		stripJob(out)
	case gvk.Group == "" && gvk.Kind == "PersistentVolumeClaim":
		unstructured.RemoveNestedField(out.Object, "spec", "volumeName")
		dropAnnotations = append(dropAnnotations[:len(dropAnnotations):len(dropAnnotations)], droppedClaimAnnotations...)
	}
	if a, ok := meta["annotations"].(map[string]any); ok {
		for _, k := range dropAnnotations {
			delete(a, k)
		}
		if len(a) == 0 {
			delete(meta, "annotations")
		}
	}
	return out
}

// stripService drops the Service's per-cluster allocations.
func stripService(svc *unstructured.Unstructured) {
	unstructured.RemoveNestedField(svc.Object, "spec", "clusterIP")
	unstructured.RemoveNestedField(svc.Object, "spec", "clusterIPs")
	typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type")
	if typ == "NodePort" || typ == "LoadBalancer" {
		return
	}
	ports, _, _ := unstructured.NestedFieldNoCopy(svc.Object, "spec", "ports")
	list, _ := ports.([]any)
	for _, p := range list {
		if m, ok := p.(map[string]any); ok {
			delete(m, "nodePort")
		}
	}
}

// stripJob drops the selector and labels the Job controller generated.
func stripJob(job *unstructured.Unstructured) {
	if manual, _, _ := unstructured.NestedBool(job.Object, "spec", "manualSelector"); manual {
		return
	}
	unstructured.RemoveNestedField(job.Object, "spec", "selector")
	v, _, _ := unstructured.NestedFieldNoCopy(job.Object, "spec", "template", "metadata", "labels")
	labels, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, k := range jobLabels {
		delete(labels, k)
	}
	if len(labels) == 0 {
		unstructured.RemoveNestedField(job.Object, "spec", "template", "metadata", "labels")
	}
}
