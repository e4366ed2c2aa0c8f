package component

import (
	"context"
	"testing"
	"time"

	"k8s.io/kubernetes/pkg/volume"
	"k8s.io/kubernetes/pkg/volume/csi"
	volumetesting "k8s.io/kubernetes/pkg/volume/testing"
)

// TestKubeletCSIState drives the upstream CSI plugin the way a server with
// an agent does: the kubelet initializes its plugins, then a controller's
// CSI plugin is initialized in the same process and takes the plugin's
// process-wide state, which keep gives back to the kubelet's plugin.
func TestKubeletCSIState(t *testing.T) {
	plugins, k := newKubeletCSI(csi.ProbeVolumePlugins())
	if k == nil {
		t.Fatal("the CSI plugin's state cannot be read in this Kubernetes version (csi.PluginHandler's csiPlugin field)")
	}
	if len(plugins) != 2 || plugins[1] != volume.VolumePlugin(k) {
		t.Fatalf("plugins = %v, want the CSI plugin then %s", plugins, kubeletCSIPluginName)
	}
	// The kubelet's plugin manager validates every plugin and hands each
	// its host.
	volumetesting.NewFakeKubeletVolumeHost(t, t.TempDir(), nil, plugins)
	if !k.owns() {
		t.Fatal("after the kubelet initialized its plugins, its CSI plugin does not own the state")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { k.keep(ctx); close(done) }()

	// kube-controller-manager's attach/detach controller, say.
	volumetesting.NewFakeVolumeHost(t, t.TempDir(), nil, csi.ProbeVolumePlugins())
	deadline := time.Now().Add(5 * time.Second)
	for !k.owns() {
		if time.Now().After(deadline) {
			t.Fatal("the kubelet's CSI plugin did not get the state back within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestKubeletCSIWithoutCSIPlugin(t *testing.T) {
	in := []volume.VolumePlugin{}
	out, k := newKubeletCSI(in)
	if k != nil || len(out) != 0 {
		t.Fatalf("newKubeletCSI without a CSI plugin = %v, %v; want them unchanged", out, k)
	}
}
