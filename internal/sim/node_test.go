package sim

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNewNode(t *testing.T) {
	cfg, err := Config{
		Nodes:  1,
		Labels: map[string]string{"pool": "a"},
		Taints: []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}},
	}.defaults()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := newNode(cfg, "sim-0", netip.MustParseAddr("10.200.0.1"), now)

	for k, v := range map[string]string{"kubernetes.io/hostname": "sim-0", "kubernetes.io/os": "linux", "pool": "a"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("taints = %v", n.Spec.Taints)
	}
	wantRes := map[corev1.ResourceName]string{"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
	for r, v := range wantRes {
		if q := n.Status.Allocatable[r]; q.Cmp(resource.MustParse(v)) != 0 {
			t.Errorf("allocatable %s = %s, want %s", r, q.String(), v)
		}
	}
	if ip, ok := nodeAddress(n); !ok || ip.String() != "10.200.0.1" {
		t.Errorf("InternalIP = %v", n.Status.Addresses)
	}
	if n.Status.NodeInfo.KubeletVersion != "v1.37.2" || n.Status.NodeInfo.ContainerRuntimeVersion != "sim://1.0" {
		t.Errorf("nodeInfo = %+v", n.Status.NodeInfo)
	}
	ready := false
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady:
			ready = c.Status == corev1.ConditionTrue && c.Reason == "KubeletReady" && c.Message == "kubelet is posting ready status"
		default:
			if c.Status != corev1.ConditionFalse {
				t.Errorf("condition %s = %s, want False", c.Type, c.Status)
			}
		}
	}
	if !ready {
		t.Errorf("no Ready=True KubeletReady condition in %v", n.Status.Conditions)
	}
}

func TestNodeConditionsKeepTransitionTime(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := then.Add(time.Hour)
	existing := []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: then},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastTransitionTime: then},
	}
	for _, c := range nodeConditions(existing, now) {
		if !c.LastHeartbeatTime.Time.Equal(now) {
			t.Errorf("%s heartbeat = %v, want now", c.Type, c.LastHeartbeatTime)
		}
		switch c.Type {
		case corev1.NodeReady: // Unknown → True: a transition
			if !c.LastTransitionTime.Time.Equal(now) {
				t.Errorf("Ready transition = %v, want now", c.LastTransitionTime)
			}
		case corev1.NodeMemoryPressure: // unchanged
			if !c.LastTransitionTime.Time.Equal(then.Time) {
				t.Errorf("MemoryPressure transition = %v, want %v", c.LastTransitionTime, then)
			}
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{Nodes: 2}.defaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NamePrefix != "sim-" || cfg.MaxPods != 110 || cfg.RunTime != time.Second ||
		cfg.HeartbeatInterval != 10*time.Second || cfg.QPS != 500 || cfg.Burst != 1000 || cfg.Log == nil {
		t.Errorf("defaults = %+v", cfg)
	}
	for name, bad := range map[string]Config{
		"no nodes":   {},
		"bad effect": {Nodes: 1, Taints: []corev1.Taint{{Key: "k", Effect: "Sometimes"}}},
		"negative":   {Nodes: 1, StartDelay: -time.Second},
	} {
		if _, err := bad.defaults(); err == nil {
			t.Errorf("%s: defaults accepted %+v", name, bad)
		}
	}
}
