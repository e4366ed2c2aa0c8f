package component

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/volume"
	"k8s.io/kubernetes/pkg/volume/csi"
)

// The CSI volume plugin keeps process-wide state in
// k8s.io/kubernetes/pkg/volume/csi: the node info manager, which holds the
// node's name and publishes its CSINode, and csi.PluginHandler, through which
// the kubelet registers CSI drivers. Every Init of a CSI plugin sets both.
// kube-controller-manager's volume controllers (attach/detach, expansion, the
// persistent volume binder) Init their own CSI plugins with a host that has
// no node, so when they do so after the kubelet in the same process, the
// kubelet's CSINode publication fails ("resource name may not be empty"), the
// node stays NotReady and, after about 140 s, the kubelet exits the process.
// Which one initializes last is a race on every start of a server with an
// agent, and a certainty when kube-controller-manager wins its lease or is
// restarted after the kubelet started.
//
// kubeletCSI gives the state back to the kubelet: it is a volume plugin that
// supports no volume, listed after the kubelet's CSI plugin, so the kubelet
// hands it its volume host; keep watches csi.PluginHandler and initializes
// the kubelet's CSI plugin again on that host whenever another plugin took
// it over.
type kubeletCSI struct {
	plugin volume.VolumePlugin // the kubelet's CSI plugin
	host   chan volume.VolumeHost
}

// kubeletCSIPluginName names kubeletCSI among the kubelet's volume plugins.
const kubeletCSIPluginName = "skiff.dev/kubelet-csi-state"

// newKubeletCSI finds the CSI plugin among the kubelet's plugins and returns
// the plugins with kubeletCSI added, or the plugins unchanged (and nil) when
// there is no CSI plugin or this Kubernetes version keeps its state in a way
// keep cannot read.
func newKubeletCSI(plugins []volume.VolumePlugin) ([]volume.VolumePlugin, *kubeletCSI) {
	for _, p := range plugins {
		if p.GetPluginName() != csi.CSIPluginName {
			continue
		}
		k := &kubeletCSI{plugin: p, host: make(chan volume.VolumeHost, 1)}
		if _, ok := k.owner(); !ok {
			slog.Warn("cannot watch the CSI plugin's process-wide state in this Kubernetes version; kube-controller-manager in the same process may leave the kubelet unable to publish its CSINode", "component", "kubelet")
			return plugins, nil
		}
		return append(plugins, k), k
	}
	return plugins, nil
}

// owner is the plugin csi.PluginHandler registers drivers with, and whether
// it could be read.
func (k *kubeletCSI) owner() (uintptr, bool) {
	f := reflect.ValueOf(csi.PluginHandler).Elem().FieldByName("csiPlugin")
	if !f.IsValid() || f.Kind() != reflect.Pointer {
		return 0, false
	}
	return f.Pointer(), true
}

// owns tells whether the kubelet's CSI plugin was the last one initialized.
func (k *kubeletCSI) owns() bool {
	p, _ := k.owner()
	return p == reflect.ValueOf(k.plugin).Pointer()
}

// settle is how long after giving the state back keep initializes the
// kubelet's plugin once more. A CSINode publication the kubelet started
// while the state was taken retries for up to about 1.6 s with the node
// name it read then, and reports the node not ready when it gives up;
// publishing again afterwards clears that.
const settle = 3 * time.Second

// keep gives the CSI plugin's state back to the kubelet whenever another
// plugin in the process took it, until ctx ends.
func (k *kubeletCSI) keep(ctx context.Context) {
	var host volume.VolumeHost
	select {
	case host = <-k.host:
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var again <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if k.owns() {
				continue
			}
			slog.Info("another volume controller in this process initialized the CSI plugin; initializing it again for the kubelet", "component", "kubelet")
			k.init(host)
			again = time.After(settle)
		case <-again:
			again = nil
			if k.owns() {
				k.init(host)
			}
		}
	}
}

func (k *kubeletCSI) init(host volume.VolumeHost) {
	if err := k.plugin.Init(host); err != nil {
		slog.Error("initializing the kubelet's CSI plugin again", "component", "kubelet", "err", err)
	}
}

var errNoVolumes = errors.New(kubeletCSIPluginName + " supports no volume")

// Init receives the kubelet's volume host.
func (k *kubeletCSI) Init(host volume.VolumeHost) error {
	select {
	case k.host <- host:
	default:
	}
	return nil
}

func (k *kubeletCSI) GetPluginName() string                      { return kubeletCSIPluginName }
func (k *kubeletCSI) GetVolumeName(*volume.Spec) (string, error) { return "", errNoVolumes }
func (k *kubeletCSI) CanSupport(*volume.Spec) bool               { return false }
func (k *kubeletCSI) RequiresRemount(*volume.Spec) bool          { return false }
func (k *kubeletCSI) SupportsMountOption() bool                  { return false }
func (k *kubeletCSI) SupportsSELinuxContextMount(*volume.Spec) (bool, error) {
	return false, nil
}

func (k *kubeletCSI) NewMounter(*volume.Spec, *corev1.Pod) (volume.Mounter, error) {
	return nil, errNoVolumes
}

func (k *kubeletCSI) NewUnmounter(string, types.UID) (volume.Unmounter, error) {
	return nil, errNoVolumes
}

func (k *kubeletCSI) ConstructVolumeSpec(string, string) (volume.ReconstructedVolume, error) {
	return volume.ReconstructedVolume{}, errNoVolumes
}
