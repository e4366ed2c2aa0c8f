package sim

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// podBuilder builds test pods: makePod().restart(Never).obj().
type podBuilder struct{ p *corev1.Pod }

func makePod() podBuilder {
	return podBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid-1", CreationTimestamp: metav1.NewTime(t0)},
		Spec: corev1.PodSpec{
			NodeName:      "sim-0",
			RestartPolicy: corev1.RestartPolicyAlways,
			Containers:    []corev1.Container{{Name: "app", Image: "nginx"}, {Name: "side", Image: "busybox"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort},
	}}
}

func (b podBuilder) restart(p corev1.RestartPolicy) podBuilder { b.p.Spec.RestartPolicy = p; return b }
func (b podBuilder) annotate(k, v string) podBuilder {
	if b.p.Annotations == nil {
		b.p.Annotations = map[string]string{}
	}
	b.p.Annotations[k] = v
	return b
}
func (b podBuilder) scheduled(at time.Time) podBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at),
	})
	return b
}
func (b podBuilder) running(since time.Time) podBuilder {
	b.p.Status = runningStatus(b.p, "10.200.0.1", []string{"10.42.0.5"}, since)
	return b
}
func (b podBuilder) phase(p corev1.PodPhase) podBuilder { b.p.Status.Phase = p; return b }
func (b podBuilder) deleted(grace int64) podBuilder {
	ts := metav1.NewTime(t0)
	b.p.DeletionTimestamp, b.p.DeletionGracePeriodSeconds = &ts, &grace
	return b
}
func (b podBuilder) initContainer(name string, always bool) podBuilder {
	c := corev1.Container{Name: name, Image: "init"}
	if always {
		c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	}
	b.p.Spec.InitContainers = append(b.p.Spec.InitContainers, c)
	return b
}
func (b podBuilder) obj() *corev1.Pod { return b.p }

func TestPodBehaviour(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		wantCode int32
		wantRun  time.Duration
		wantErr  bool
	}{
		{"defaults", makePod().obj(), 0, time.Second, false},
		{"exit code", makePod().annotate(AnnotationExitCode, "3").obj(), 3, time.Second, false},
		{"run seconds", makePod().annotate(AnnotationRunSeconds, "2.5").obj(), 0, 2500 * time.Millisecond, false},
		{"zero run", makePod().annotate(AnnotationRunSeconds, "0").obj(), 0, 0, false},
		{"both", makePod().annotate(AnnotationExitCode, " 1 ").annotate(AnnotationRunSeconds, "30").obj(), 1, 30 * time.Second, false},
		{"bad exit code", makePod().annotate(AnnotationExitCode, "x").obj(), 0, time.Second, true},
		{"exit code out of range", makePod().annotate(AnnotationExitCode, "256").obj(), 0, time.Second, true},
		{"negative run", makePod().annotate(AnnotationRunSeconds, "-1").annotate(AnnotationExitCode, "2").obj(), 2, time.Second, true},
		{"NaN run", makePod().annotate(AnnotationRunSeconds, "NaN").obj(), 0, time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := podBehaviour(tc.pod, time.Second)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if b.exitCode != tc.wantCode || b.runTime != tc.wantRun {
				t.Fatalf("behaviour = %+v, want code %d run %s", b, tc.wantCode, tc.wantRun)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	run := behaviour{runTime: 10 * time.Second}
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		now        time.Time
		startDelay time.Duration
		want       action
	}{
		{"bound pod starts", makePod().scheduled(t0).obj(), t0, 0, action{step: stepStart}},
		{"start delay not over", makePod().scheduled(t0).obj(), t0.Add(time.Second), 5 * time.Second, action{after: 4 * time.Second}},
		{"start delay over", makePod().scheduled(t0).obj(), t0.Add(5 * time.Second), 5 * time.Second, action{step: stepStart}},
		{"no PodScheduled: from creation", makePod().obj(), t0.Add(2 * time.Second), 5 * time.Second, action{after: 3 * time.Second}},
		{"Always runs forever", makePod().running(t0).obj(), t0.Add(time.Hour), 0, action{}},
		{"Never still running", makePod().restart(corev1.RestartPolicyNever).running(t0).obj(), t0.Add(4 * time.Second), 0, action{after: 6 * time.Second}},
		{"Never exits", makePod().restart(corev1.RestartPolicyNever).running(t0).obj(), t0.Add(10 * time.Second), 0, action{step: stepExit}},
		{"OnFailure exits", makePod().restart(corev1.RestartPolicyOnFailure).running(t0).obj(), t0.Add(11 * time.Second), 0, action{step: stepExit}},
		{"Succeeded stays", makePod().restart(corev1.RestartPolicyNever).phase(corev1.PodSucceeded).obj(), t0, 0, action{}},
		{"Failed stays", makePod().phase(corev1.PodFailed).obj(), t0, 0, action{}},
		{"deleted running pod is killed", makePod().running(t0).deleted(30).obj(), t0, 0, action{step: stepKill}},
		{"deleted pending pod is deleted", makePod().deleted(30).obj(), t0, 0, action{step: stepKill}},
		{"finally deleted pod waits for finalizers", makePod().phase(corev1.PodFailed).deleted(0).obj(), t0, 0, action{}},
		{"deleted with grace 0 still gets terminated status", makePod().running(t0).deleted(0).obj(), t0, 0, action{step: stepKill}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decide(tc.pod, tc.now, tc.startDelay, run); got != tc.want {
				t.Fatalf("decide = %s after %s, want %s after %s", got.step, got.after, tc.want.step, tc.want.after)
			}
		})
	}
}

func TestRunningStatus(t *testing.T) {
	pod := makePod().scheduled(t0).initContainer("setup", false).initContainer("proxy", true).obj()
	st := runningStatus(pod, "10.200.0.7", []string{"10.42.1.3"}, t0.Add(time.Second))

	if st.Phase != corev1.PodRunning || st.HostIP != "10.200.0.7" || st.PodIP != "10.42.1.3" ||
		len(st.PodIPs) != 1 || len(st.HostIPs) != 1 || st.StartTime == nil || st.QOSClass != corev1.PodQOSBestEffort {
		t.Fatalf("status = %+v", st)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if c := condition(st, typ); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %+v, want True", typ, c)
		}
	}
	if c := condition(st, corev1.PodScheduled); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("PodScheduled moved its transition time to %v", c.LastTransitionTime)
	}
	if len(st.ContainerStatuses) != 2 {
		t.Fatalf("container statuses = %+v", st.ContainerStatuses)
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.ContainerID == "" || cs.ImageID != "sim://"+cs.Image {
			t.Errorf("container %s = %+v, want running, ready, started", cs.Name, cs)
		}
	}
	setup, proxy := st.InitContainerStatuses[0], st.InitContainerStatuses[1]
	if setup.State.Terminated == nil || setup.State.Terminated.ExitCode != 0 || setup.State.Terminated.Reason != "Completed" {
		t.Errorf("init container = %+v, want terminated Completed", setup.State)
	}
	if proxy.State.Running == nil {
		t.Errorf("sidecar init container = %+v, want running", proxy.State)
	}

	// Rewriting a status keeps container IDs: they are derived from the pod.
	again := runningStatus(pod, "10.200.0.7", []string{"10.42.1.3"}, t0.Add(time.Minute))
	if again.ContainerStatuses[0].ContainerID != st.ContainerStatuses[0].ContainerID {
		t.Error("container ID changed between two writes")
	}
}

func TestRunningStatusReadinessGates(t *testing.T) {
	pod := makePod().obj()
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
	st := runningStatus(pod, "10.200.0.1", nil, t0)
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Fatalf("Ready = %+v, want False ReadinessGatesNotReady", c)
	}
}

func TestExitedStatus(t *testing.T) {
	for _, tc := range []struct {
		code       int32
		wantPhase  corev1.PodPhase
		wantReason string
	}{
		{0, corev1.PodSucceeded, "Completed"},
		{1, corev1.PodFailed, "Error"},
	} {
		pod := makePod().restart(corev1.RestartPolicyNever).running(t0).obj()
		st := exitedStatus(pod, tc.code, t0.Add(time.Second))
		if st.Phase != tc.wantPhase {
			t.Errorf("exit %d: phase %s, want %s", tc.code, st.Phase, tc.wantPhase)
		}
		for _, cs := range st.ContainerStatuses {
			term := cs.State.Terminated
			if term == nil || term.ExitCode != tc.code || term.Reason != tc.wantReason || cs.Ready ||
				!term.StartedAt.Time.Equal(t0) || !term.FinishedAt.Time.Equal(t0.Add(time.Second)) || term.ContainerID != cs.ContainerID {
				t.Errorf("exit %d: container %s = %+v", tc.code, cs.Name, cs)
			}
		}
		if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse {
			t.Errorf("exit %d: Ready = %+v, want False", tc.code, c)
		}
		if c := condition(st, corev1.PodScheduled); c.Status != corev1.ConditionTrue {
			t.Errorf("exit %d: PodScheduled = %+v, want True", tc.code, c)
		}
	}
}

func TestKilledStatus(t *testing.T) {
	running := makePod().running(t0).deleted(30).obj()
	st := killedStatus(running, t0.Add(time.Second))
	if st.Phase != corev1.PodFailed || st.ContainerStatuses[0].State.Terminated == nil ||
		st.ContainerStatuses[0].State.Terminated.ExitCode != killedExitCode {
		t.Fatalf("killed running pod: %+v", st)
	}
	done := makePod().restart(corev1.RestartPolicyNever).running(t0).obj()
	done.Status = exitedStatus(done, 0, t0.Add(time.Second))
	if st := killedStatus(done, t0.Add(time.Minute)); st.Phase != corev1.PodSucceeded {
		t.Fatalf("killing a Succeeded pod changed its phase to %s", st.Phase)
	}
	pending := makePod().deleted(30).obj()
	if st := killedStatus(pending, t0); st.Phase != corev1.PodPending || len(st.ContainerStatuses) != 0 {
		t.Fatalf("killing a pod that never started changed its status: %+v", st)
	}
}

func condition(st corev1.PodStatus, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}
