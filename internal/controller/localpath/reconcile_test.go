package localpath

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness is a reconciler over informers of a fake clientset that holds objs.
type harness struct {
	r      *reconciler
	client *fake.Clientset
	events *record.FakeRecorder
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	client := fake.NewClientset(objs...)
	events := record.NewFakeRecorder(100)
	c, err := New(Config{Recorder: events, Log: quiet}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, stop, err := c.start(ctx, events)
	t.Cleanup(func() { cancel(); stop() })
	if err != nil {
		t.Fatal(err)
	}
	return &harness{r: r, client: client, events: events}
}

// eventReasons drains the recorded events' reasons, in order.
func (h *harness) eventReasons() []string {
	var reasons []string
	for {
		select {
		case e := <-h.events.Events:
			reasons = append(reasons, strings.Fields(e)[1])
		default:
			return reasons
		}
	}
}

// writes lists the create, update, patch and delete calls made, as "verb resource".
func (h *harness) writes() []string {
	var out []string
	for _, a := range h.client.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

func TestProvision(t *testing.T) {
	ctx := context.Background()
	claim := makeClaim("data-web-0").Node("n1").Obj()
	h := newHarness(t, StorageClass(), makeNode("n1", "/tmp/agent/storage"), claim)

	if err := h.r.syncClaim(ctx, "default/data-web-0"); err != nil {
		t.Fatal(err)
	}
	pv, err := h.client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-data-web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no volume provisioned: %v", err)
	}
	want, _ := newVolume(claim, StorageClass(), makeNode("n1", "/tmp/agent/storage"))
	if pv.Spec.HostPath.Path != "/tmp/agent/storage/pvc-uid-data-web-0_default_data-web-0" ||
		pv.Spec.ClaimRef.UID != claim.UID || pv.Annotations[annProvisionedBy] != ProvisionerName ||
		pv.Spec.StorageClassName != ClassName || pv.Spec.Capacity.Storage().String() != "1Gi" ||
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "n1" ||
		pv.Spec.String() != want.Spec.String() {
		t.Errorf("provisioned volume:\n%v\nwant:\n%v", pv.Spec.String(), want.Spec.String())
	}
	if got, want := strings.Join(h.eventReasons(), ","), "Provisioning,ProvisioningSucceeded"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}

	// Again, as after a restart or a claim update: nothing more to do.
	if err := h.r.syncClaim(ctx, "default/data-web-0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.writes(), ","); got != "create persistentvolumes" {
		t.Errorf("writes %s, want one create", got)
	}
	if ev := h.eventReasons(); len(ev) != 0 {
		t.Errorf("second reconcile emitted %v", ev)
	}
}

func TestProvisionWaits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim *corev1.PersistentVolumeClaim
	}{
		{"not scheduled yet", makeClaim("c").Obj()},
		{"another provisioner's class", makeClaim("c").Class("ebs").Node("n1").Obj()},
		{"a class that does not exist", makeClaim("c").Class("gone").Node("n1").Obj()},
		{"bound", makeClaim("c").Node("n1").Bound("pvc-elsewhere").Obj()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, StorageClass(), otherClass("ebs", "ebs.csi.aws.com"), makeNode("n1", ""), tc.claim)
			if err := h.r.syncClaim(context.Background(), "default/c"); err != nil {
				t.Fatal(err)
			}
			if w := h.writes(); len(w) != 0 {
				t.Errorf("writes %v, want none", w)
			}
		})
	}
}

func TestProvisionFails(t *testing.T) {
	h := newHarness(t, StorageClass(), makeNode("n1", ""), makeClaim("c").Node("n1").Block().Obj())
	if err := h.r.syncClaim(context.Background(), "default/c"); err != nil {
		t.Fatalf("a claim that cannot be served is not retried: %v", err)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v, want none", w)
	}
	if got := strings.Join(h.eventReasons(), ","); got != "ProvisioningFailed" {
		t.Errorf("events %s", got)
	}
}

func TestProvisionOnMissingNodeReschedules(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, StorageClass(), makeClaim("c").Node("gone").Obj())
	if err := h.r.syncClaim(ctx, "default/c"); err != nil {
		t.Fatal(err)
	}
	claim, err := h.client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := claim.Annotations[annSelectedNode]; ok {
		t.Errorf("selected node %q kept; the scheduler should pick another", n)
	}
	if got := strings.Join(h.writes(), ","); got != "patch persistentvolumeclaims" {
		t.Errorf("writes %s", got)
	}
	if got := strings.Join(h.eventReasons(), ","); got != "ProvisioningFailed" {
		t.Errorf("events %s", got)
	}
}

func TestReleaseStartsCleanup(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, makeNode("n1", "/data/storage"), releasedVolume())
	if err := h.r.syncVolume(ctx, "pvc-uid-web-0"); err != nil {
		t.Fatal(err)
	}
	pod, err := h.client.CoreV1().Pods("kube-system").Get(ctx, "local-path-cleanup-pvc-uid-web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no cleanup pod: %v", err)
	}
	if pod.Spec.NodeName != "n1" || strings.Join(pod.Spec.Containers[0].Command, " ") != "rm -rf /parent/pvc-uid-web-0_default_web-0" ||
		pod.Spec.Volumes[0].HostPath.Path != "/data/storage" {
		t.Errorf("cleanup pod on %q runs %q with %s mounted", pod.Spec.NodeName, pod.Spec.Containers[0].Command, pod.Spec.Volumes[0].HostPath.Path)
	}
	if _, err := h.client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-web-0", metav1.GetOptions{}); err != nil {
		t.Errorf("volume deleted before its directory: %v", err)
	}
}

func TestCleanupPodStillRunning(t *testing.T) {
	h := newHarness(t, makeNode("n1", "/data/storage"), releasedVolume(), cleanupPodIn(corev1.PodRunning))
	if err := h.r.syncVolume(context.Background(), "pvc-uid-web-0"); err != nil {
		t.Fatal(err)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v while the cleanup runs, want none", w)
	}
}

func TestCleanupSucceededDeletesVolume(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, makeNode("n1", "/data/storage"), releasedVolume(), cleanupPodIn(corev1.PodSucceeded))
	if err := h.r.syncVolume(ctx, "pvc-uid-web-0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.writes(), ","); got != "delete pods,delete persistentvolumes" {
		t.Errorf("writes %s, want the cleanup pod then the volume deleted", got)
	}
	if _, err := h.client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-web-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("volume still there: %v", err)
	}
}

func TestCleanupFailedIsRetried(t *testing.T) {
	h := newHarness(t, makeNode("n1", "/data/storage"), releasedVolume(), cleanupPodIn(corev1.PodFailed))
	if err := h.r.syncVolume(context.Background(), "pvc-uid-web-0"); err == nil {
		t.Error("a failed cleanup returns an error, so that it is retried with back-off")
	}
	if got := strings.Join(h.writes(), ","); got != "delete pods" {
		t.Errorf("writes %s, want the failed pod deleted (and the volume kept)", got)
	}
	if got := strings.Join(h.eventReasons(), ","); got != "VolumeFailedDelete" {
		t.Errorf("events %s", got)
	}
}

func TestReleasedVolumeOfLostNode(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, releasedVolume())
	if err := h.r.syncVolume(ctx, "pvc-uid-web-0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.writes(), ","); got != "delete persistentvolumes" {
		t.Errorf("writes %s, want the volume deleted without a cleanup pod", got)
	}
}

func TestVolumesLeftAlone(t *testing.T) {
	bound := releasedVolume()
	bound.Status.Phase = corev1.VolumeBound
	retained := releasedVolume()
	retained.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	foreign := releasedVolume()
	foreign.Annotations = nil
	tampered := releasedVolume()
	tampered.Spec.HostPath.Path = "/etc"
	for name, pv := range map[string]*corev1.PersistentVolume{"bound": bound, "retained": retained, "foreign": foreign, "tampered": tampered} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, makeNode("n1", "/data/storage"), pv)
			if err := h.r.syncVolume(context.Background(), pv.Name); err != nil {
				t.Fatal(err)
			}
			if w := h.writes(); len(w) != 0 {
				t.Errorf("writes %v, want none", w)
			}
		})
	}
}

func TestOrphanCleanupPodDeleted(t *testing.T) {
	h := newHarness(t, cleanupPodIn(corev1.PodSucceeded))
	if err := h.r.syncVolume(context.Background(), "pvc-uid-web-0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.writes(), ","); got != "delete pods" {
		t.Errorf("writes %s", got)
	}
}

// TestRun drives the whole loop under leader election: a claim gets its
// volume, the Lease is held, and Run returns once ctx ends.
func TestRun(t *testing.T) {
	client := fake.NewClientset(StorageClass(), makeNode("n1", "/data/storage"), makeClaim("c").Node("n1").Obj())
	c, err := New(Config{Recorder: record.NewFakeRecorder(100), Log: quiet, LeaseName: "skiff-local-path", Identity: "me"}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-c", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Errorf("no volume provisioned: %v", err)
	}
	lease, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "skiff-local-path", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != "me" {
		t.Errorf("lease %+v, %v; want held by me", lease, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after ctx ends", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}
