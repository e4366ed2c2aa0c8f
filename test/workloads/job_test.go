package workloads

import (
	"slices"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffdev/skiff/internal/sim"
	"github.com/skiffdev/skiff/test/testenv"
)

func waitJob(t *testing.T, ns, name, what string, ok func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	jobs := testenv.Get(t).Client.BatchV1().Jobs(ns)
	return waitFor(t, long, "job "+name+" "+what, func() (*batchv1.Job, error) { return jobs.Get(ctx, name, metav1.GetOptions{}) }, ok)
}

// TestJobCompletions checks that a Job runs its pods at most parallelism
// at a time until completions of them succeeded.
func TestJobCompletions(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	peak := watchActivePods(t, ns)
	job := makeJob(ns, "batch", 4, 2, annotate(sim.AnnotationRunSeconds, "1"))
	if _, err := env.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, ns, "batch", "complete", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	if got.Status.Succeeded != 4 || got.Status.Failed != 0 || got.Status.CompletionTime == nil {
		t.Fatalf("job status = succeeded %d, failed %d, completionTime %v; want 4, 0, set", got.Status.Succeeded, got.Status.Failed, got.Status.CompletionTime)
	}
	if p := peak(); p > 2 || p == 0 {
		t.Fatalf("up to %d pods were active at once, want 1..parallelism (2)", p)
	}
	pods := mustPods(t, ns, "batch.kubernetes.io/job-name=batch")
	succeeded := 0
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded {
			succeeded++
			if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
				t.Errorf("pod %s container state = %+v, want terminated Completed, exit 0", p.Name, p.Status.ContainerStatuses[0].State)
			}
		}
	}
	if succeeded != 4 {
		t.Fatalf("%d pods Succeeded, want 4: %s", succeeded, names(pods))
	}
}

// TestJobBackoffLimit checks that a Job whose pods keep failing stops after
// backoffLimit retries, Failed with reason BackoffLimitExceeded.
func TestJobBackoffLimit(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	job := makeJob(ns, "fail", 1, 1, annotate(sim.AnnotationExitCode, "3"), annotate(sim.AnnotationRunSeconds, "0.2"))
	job.Spec.BackoffLimit = ptr(int32(1))
	if _, err := env.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, ns, "fail", "failed", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobFailed) != nil })
	if c := jobCondition(got, batchv1.JobFailed); c.Reason != "BackoffLimitExceeded" {
		t.Fatalf("Failed condition reason %q, want BackoffLimitExceeded", c.Reason)
	}
	if got.Status.Failed != 2 || got.Status.Succeeded != 0 {
		t.Fatalf("job status = failed %d, succeeded %d; want 2 (first try and one retry), 0", got.Status.Failed, got.Status.Succeeded)
	}
	for _, p := range mustPods(t, ns, "batch.kubernetes.io/job-name=fail") {
		term := p.Status.ContainerStatuses[0].State.Terminated
		if p.Status.Phase != corev1.PodFailed || term == nil || term.ExitCode != 3 || term.Reason != "Error" {
			t.Errorf("pod %s is %s with %+v, want Failed, exit 3, reason Error", p.Name, p.Status.Phase, p.Status.ContainerStatuses[0].State)
		}
	}
}

// TestJobIndexed checks an Indexed Job: each index completes once.
func TestJobIndexed(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	job := makeJob(ns, "idx", 3, 3)
	mode := batchv1.IndexedCompletion
	job.Spec.CompletionMode = &mode
	if _, err := env.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, ns, "idx", "complete", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	if got.Status.CompletedIndexes != "0-2" || got.Status.Succeeded != 3 {
		t.Fatalf("completedIndexes %q, succeeded %d; want 0-2, 3", got.Status.CompletedIndexes, got.Status.Succeeded)
	}
	var idx []string
	for _, p := range mustPods(t, ns, "batch.kubernetes.io/job-name=idx") {
		if p.Status.Phase == corev1.PodSucceeded {
			idx = append(idx, p.Annotations[batchv1.JobCompletionIndexAnnotation])
		}
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []string{"0", "1", "2"}) {
		t.Fatalf("succeeded pods have completion indexes %v, want 0, 1, 2", idx)
	}
}

// TestCronJob checks that a CronJob scheduled every minute creates a Job
// that runs to completion. It waits up to a minute for the schedule.
func TestCronJob(t *testing.T) {
	t.Parallel()
	baseNodes(t)
	env := testenv.Get(t)
	ns := namespace(t)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tick"},
		Spec: batchv1.CronJobSpec{
			Schedule:          "* * * * *",
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate:       batchv1.JobTemplateSpec{Spec: makeJob(ns, "tick", 1, 1).Spec},
		},
	}
	if _, err := env.Client.BatchV1().CronJobs(ns).Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := waitFor(t, 75*time.Second, "a Job created by the CronJob", func() (*batchv1.Job, error) {
		l, err := env.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return nil, err
		}
		return &l.Items[0], nil
	}, func(j *batchv1.Job) bool { return j != nil })
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "CronJob" || ref.Name != "tick" {
		t.Fatalf("job %s is controlled by %+v, want CronJob tick", job.Name, ref)
	}
	waitJob(t, ns, job.Name, "complete", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	waitFor(t, long, "CronJob status", func() (*batchv1.CronJob, error) {
		return env.Client.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
	}, func(c *batchv1.CronJob) bool {
		return c.Status.LastScheduleTime != nil && c.Status.LastSuccessfulTime != nil
	})
}

// watchActivePods watches a namespace's pods until the test ends and
// returns a function giving the peak number of pods active at once
// (neither finished nor being deleted).
func watchActivePods(t *testing.T, ns string) (peak func() int) {
	t.Helper()
	w, err := testenv.Get(t).Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex // guards top
		top  int
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		active := map[string]bool{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			active[p.Name] = ev.Type != watch.Deleted && p.DeletionTimestamp == nil &&
				p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
			n := 0
			for _, a := range active {
				if a {
					n++
				}
			}
			mu.Lock()
			top = max(top, n)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}
