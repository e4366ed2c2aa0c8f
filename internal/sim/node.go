package sim

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What a simulated node reports about itself.
const (
	KubeletVersion          = "v1.37.2"
	ContainerRuntimeVersion = "sim://1.0"
	// LeaseDurationSeconds is the node Lease's leaseDurationSeconds, the kubelet's.
	LeaseDurationSeconds = 40
	// LeaseNamespace holds the node Leases.
	LeaseNamespace = "kube-node-lease"
	kubeletPort    = 10250
)

var ephemeralStorage = resource.MustParse("100Gi")

// newNode is the Node a Sim registers for name.
func newNode(cfg Config, name string, ip netip.Addr, now time.Time) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: runtime.GOARCH,
	}
	maps.Copy(labels, cfg.Labels)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: labels,
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":                           "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			},
		},
		Spec: corev1.NodeSpec{
			ProviderID: "sim://" + name,
			Taints:     append([]corev1.Taint(nil), cfg.Taints...),
		},
		Status: nodeStatus(cfg, name, ip, nil, now),
	}
}

// nodeStatus is the full status a node reports: capacity, conditions,
// addresses and versions. existing are the node's current conditions.
func nodeStatus(cfg Config, name string, ip netip.Addr, existing []corev1.NodeCondition, now time.Time) corev1.NodeStatus {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              cfg.CPU,
		corev1.ResourceMemory:           cfg.Memory,
		corev1.ResourcePods:             *resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: ephemeralStorage,
	}
	id := machineID(name)
	return corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions:  nodeConditions(existing, now),
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip.String()},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kubeletPort}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               id,
			SystemUUID:              id,
			BootID:                  id,
			KernelVersion:           "sim",
			OSImage:                 "skiff sim",
			ContainerRuntimeVersion: ContainerRuntimeVersion,
			KubeletVersion:          KubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
		},
	}
}

// machineID is a stable fake machine ID for a node name.
func machineID(name string) string {
	h := fnv.New128a()
	h.Write([]byte(name))
	return fmt.Sprintf("%x", h.Sum(nil))
}

// nodeConditions are a healthy kubelet's conditions with a fresh heartbeat,
// keeping each transition time when the status did not change.
func nodeConditions(existing []corev1.NodeCondition, now time.Time) []corev1.NodeCondition {
	t := metav1.NewTime(now)
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range want {
		c := &want[i]
		c.LastHeartbeatTime, c.LastTransitionTime = t, t
		for _, old := range existing {
			if old.Type == c.Type && old.Status == c.Status && !old.LastTransitionTime.IsZero() {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return want
}

// nodeAddress is the node's InternalIP, if it has a valid one.
func nodeAddress(n *corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip, err := netip.ParseAddr(a.Address)
			return ip, err == nil
		}
	}
	return netip.Addr{}, false
}

// podCIDRs are the node's pod ranges, once the controller manager has set them.
func podCIDRs(n *corev1.Node) []netip.Prefix {
	list := n.Spec.PodCIDRs
	if len(list) == 0 && n.Spec.PodCIDR != "" {
		list = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// newLease is a node's Lease, owned by its Node so that deleting the Node deletes it.
func newLease(node *corev1.Node, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      node.Name,
			Namespace: LeaseNamespace,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr(node.Name),
			LeaseDurationSeconds: ptr(int32(LeaseDurationSeconds)),
			RenewTime:            &metav1.MicroTime{Time: now},
		},
	}
}
