package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod annotations that steer how a pod plays out.
const (
	// AnnotationExitCode is the exit code of every container of the pod
	// ("0" by default). Non-zero ends the pod Failed, reason Error.
	AnnotationExitCode = "sim.skiff.dev/exit-code"
	// AnnotationRunSeconds is how long the pod runs before it exits, in
	// seconds, fractions allowed; it overrides Config.RunTime.
	AnnotationRunSeconds = "sim.skiff.dev/run-seconds"
)

// killedExitCode is what a container killed by SIGTERM exits with.
const killedExitCode = 143

// behaviour is how one pod plays out.
type behaviour struct {
	exitCode int32
	runTime  time.Duration
}

// podBehaviour reads the pod's annotations over the defaults. An invalid
// annotation is reported and its default used.
func podBehaviour(pod *corev1.Pod, runTime time.Duration) (behaviour, error) {
	b := behaviour{runTime: runTime}
	var errs []string
	if v, ok := pod.Annotations[AnnotationExitCode]; ok {
		code, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || code < 0 || code > 255 {
			errs = append(errs, fmt.Sprintf("%s=%q: want an integer 0-255", AnnotationExitCode, v))
		} else {
			b.exitCode = int32(code)
		}
	}
	if v, ok := pod.Annotations[AnnotationRunSeconds]; ok {
		secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || secs < 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
			errs = append(errs, fmt.Sprintf("%s=%q: want a non-negative number of seconds", AnnotationRunSeconds, v))
		} else {
			b.runTime = time.Duration(secs * float64(time.Second))
		}
	}
	if len(errs) > 0 {
		return b, fmt.Errorf("pod %s/%s: %s", pod.Namespace, pod.Name, strings.Join(errs, "; "))
	}
	return b, nil
}

// step is what a pod worker does next for a pod.
type step int

const (
	stepWait  step = iota // nothing now; look again after action.after, if set
	stepStart             // write Running status
	stepExit              // write Succeeded or Failed status
	stepKill              // pod is being deleted: write terminated status if needed, then the final delete
)

func (s step) String() string {
	return [...]string{"wait", "start", "exit", "kill"}[s]
}

type action struct {
	step  step
	after time.Duration // for stepWait: when the pod's next step is due (0: never by itself)
}

// decide is a pod's next step, from the pod object and the clock alone.
func decide(pod *corev1.Pod, now time.Time, startDelay time.Duration, b behaviour) action {
	if pod.DeletionTimestamp != nil {
		if needsKill(pod) {
			return action{step: stepKill}
		}
		return action{}
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return action{}
	case corev1.PodRunning:
		if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Spec.RestartPolicy == "" {
			return action{}
		}
		start := pod.CreationTimestamp.Time
		if pod.Status.StartTime != nil {
			start = pod.Status.StartTime.Time
		}
		if due := start.Add(b.runTime); now.Before(due) {
			return action{after: due.Sub(now)}
		}
		return action{step: stepExit}
	default:
		if due := scheduledAt(pod).Add(startDelay); now.Before(due) {
			return action{after: due.Sub(now)}
		}
		return action{step: stepStart}
	}
}

// needsKill reports whether a deleted pod still needs its terminated status
// written or its final delete made.
func needsKill(pod *corev1.Pod) bool {
	return !(pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0) || !killed(pod)
}

// killed reports whether the pod's status already shows it stopped: it is
// terminal, or it never started.
func killed(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return true
	case corev1.PodRunning:
		return false
	}
	return len(pod.Status.ContainerStatuses) == 0
}

// scheduledAt is when the pod was bound to its node, as near as the API shows it.
func scheduledAt(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return pod.CreationTimestamp.Time
}

// runningStatus is the status a kubelet reports once all of the pod's
// containers have started: init containers completed, containers running
// and ready (no probes run here).
func runningStatus(pod *corev1.Pod, hostIP string, podIPs []string, now time.Time) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	t := metav1.NewTime(now)
	st.Phase = corev1.PodRunning
	st.Reason, st.Message = "", ""
	st.HostIP = hostIP
	st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	st.PodIPs = nil
	for _, ip := range podIPs {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	st.PodIP = ""
	if len(podIPs) > 0 {
		st.PodIP = podIPs[0]
	}
	if st.StartTime == nil {
		st.StartTime = &t
	}
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		cs := containerStatus(pod, c, t)
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: t, FinishedAt: t, ContainerID: cs.ContainerID,
			}}
			cs.Started = ptr(false)
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(pod, c, t))
	}
	setCondition(&st, corev1.PodScheduled, corev1.ConditionTrue, "", "", t)
	setCondition(&st, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", "", t)
	setCondition(&st, corev1.PodInitialized, corev1.ConditionTrue, "", "", t)
	setCondition(&st, corev1.ContainersReady, corev1.ConditionTrue, "", "", t)
	if gates := unreadyGates(pod); len(gates) > 0 {
		setCondition(&st, corev1.PodReady, corev1.ConditionFalse, "ReadinessGatesNotReady",
			fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is not True", gates[0]), t)
	} else {
		setCondition(&st, corev1.PodReady, corev1.ConditionTrue, "", "", t)
	}
	return st
}

// containerStatus is a running, ready container.
func containerStatus(pod *corev1.Pod, c corev1.Container, t metav1.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name:        c.Name,
		Image:       c.Image,
		ImageID:     "sim://" + c.Image,
		ContainerID: containerID(pod, c.Name),
		State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}},
		Ready:       true,
		Started:     ptr(true),
	}
}

// containerID is stable for a pod's container, so rewriting a status does not change it.
func containerID(pod *corev1.Pod, name string) string {
	h := fnv.New64a()
	h.Write([]byte(pod.UID))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return fmt.Sprintf("sim://%016x", h.Sum64())
}

// exitedStatus is the status of a pod whose containers all exited with code:
// Succeeded for 0, Failed otherwise.
func exitedStatus(pod *corev1.Pod, code int32, now time.Time) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	t := metav1.NewTime(now)
	reason, phase := "Completed", corev1.PodSucceeded
	if code != 0 {
		reason, phase = "Error", corev1.PodFailed
	}
	st.Phase = phase
	started := t
	if st.StartTime != nil {
		started = *st.StartTime
	} else {
		st.StartTime = &t
	}
	terminate := func(list []corev1.ContainerStatus) {
		for i := range list {
			cs := &list[i]
			if cs.State.Terminated != nil {
				continue
			}
			from := started
			if cs.State.Running != nil {
				from = cs.State.Running.StartedAt
			}
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, StartedAt: from, FinishedAt: t, ContainerID: cs.ContainerID,
			}}
			cs.Ready = false
			cs.Started = ptr(false)
		}
	}
	terminate(st.InitContainerStatuses)
	terminate(st.ContainerStatuses)
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	notReady := fmt.Sprintf("containers with unready status: [%s]", strings.Join(names, " "))
	setCondition(&st, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", "", t)
	if phase == corev1.PodSucceeded {
		setCondition(&st, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", "", t)
		setCondition(&st, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", "", t)
	} else {
		setCondition(&st, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", notReady, t)
		setCondition(&st, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", notReady, t)
	}
	return st
}

// killedStatus is the status of a deleted pod after its containers were
// stopped with SIGTERM. A pod that never started keeps its status.
func killedStatus(pod *corev1.Pod, now time.Time) corev1.PodStatus {
	if killed(pod) {
		return pod.Status
	}
	return exitedStatus(pod, killedExitCode, now)
}

// unreadyGates names the pod's readiness gates whose conditions are not True.
func unreadyGates(pod *corev1.Pod) []string {
	var out []string
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			out = append(out, string(g.ConditionType))
		}
	}
	return out
}

// setCondition sets a pod condition, moving its transition time only when
// its status changes.
func setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus, reason, message string, t metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = t
		}
		c.Status, c.Reason, c.Message = status, reason, message
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{
		Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: t,
	})
}

func ptr[T any](v T) *T { return &v }
