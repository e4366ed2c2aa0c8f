package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

// TestStreaming: logs, exec, cp and port-forward, which the API server
// streams from the kubelet, with the embedded kubectl and each standalone
// version on the machine.
func TestStreaming(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createPod(t, ns, pod("stream", func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "counter", Image: busyboxImage,
			Command: []string{"sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"},
		})
	}))
	if _, err := the.client.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "stream"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "stream"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, "stream")
	// A few lines of output for --tail to choose from.
	eventually(t, 20*time.Second, "counter logged 3 lines", func() (bool, string) {
		r := kubectl(t, "logs", "-n", ns, "stream", "-c", "counter")
		return strings.Count(r.Stdout, "\n") >= 3, r.Stdout + r.Stderr
	})
	for _, k := range e2eutil.Kubectls(t) {
		t.Run("kubectl-"+k.Name, func(t *testing.T) { testStreaming(t, k, ns) })
	}
}

func testStreaming(t *testing.T, k e2eutil.Kubectl, ns string) {
	kc := the.kubeconfig
	run := func(t *testing.T, stdin string, args ...string) e2eutil.Result {
		t.Helper()
		return k.Run(t, kc, stdin, append([]string{"-n", ns}, args...)...)
	}
	must := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		r := run(t, stdin, args...)
		if r.Code != 0 {
			t.Fatalf("kubectl %s %s: exit %d\nstdout: %s\nstderr: %s", k.Name, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		return r.Stdout
	}

	t.Run("logs", func(t *testing.T) {
		out := must(t, "", "logs", "stream", "-c", "counter", "--tail", "2")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "line ") || !strings.HasPrefix(lines[1], "line ") {
			t.Errorf("logs --tail 2 printed %q, want two \"line N\" lines", out)
		}
		out = must(t, "", "logs", "stream", "-c", "app")
		if !strings.Contains(out, "netexec: stream: http 8080") {
			t.Errorf("logs -c app printed %q, want netexec's start line", out)
		}
		out = must(t, "", "logs", "stream", "-c", "counter", "--timestamps", "--tail", "1")
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line \d+\n$`).MatchString(out) {
			t.Errorf("logs --timestamps --tail 1 printed %q, want \"<RFC3339Nano> line N\"", out)
		}
		// Without -c, kubectl picks the first container and says so.
		r := run(t, "", "logs", "stream", "--tail", "1")
		if r.Code != 0 || !strings.Contains(r.Stdout, "netexec: stream") || !strings.Contains(r.Stderr, `Defaulted container "app"`) {
			t.Errorf("logs without -c: exit %d stdout %q stderr %q, want app's log and a note that it defaulted to app", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("logs-follow", func(t *testing.T) {
		w := k.Start(t, kc, "-n", ns, "logs", "-f", "stream", "-c", "counter", "--tail", "1")
		first, seen, ok := w.Next("line ", 10*time.Second)
		if !ok {
			w.Stop()
			t.Fatalf("logs -f printed nothing within 10s (seen %q, stderr %q)", seen, w.Stderr())
		}
		// New lines keep arriving while it follows.
		second, seen, ok := w.Next("line ", 5*time.Second)
		third, seen2, ok2 := w.Next("line ", 5*time.Second)
		w.Stop()
		if !ok || !ok2 || second == first || third == second {
			t.Errorf("logs -f: %q then %q %q (seen %q %q), want new lines every second", first, second, third, seen, seen2)
		}
	})

	t.Run("exec", func(t *testing.T) {
		in := "hello\nfrom stdin\n"
		if out := must(t, in, "exec", "-i", "stream", "-c", "app", "--", "cat"); out != in {
			t.Errorf("exec -i -- cat echoed %q, want %q", out, in)
		}
		r := run(t, "", "exec", "stream", "-c", "app", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.Code != 3 || r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err") {
			t.Errorf("exec -- sh -c 'exit 3': exit %d stdout %q stderr %q, want exit 3, out, err", r.Code, r.Stdout, r.Stderr)
		}
		r = run(t, "", "exec", "stream", "-c", "app", "--", "/no/such/binary")
		if r.Code == 0 {
			t.Errorf("exec of a missing binary exited 0 (stderr %q)", r.Stderr)
		}
	})

	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "up.txt")
		content := fmt.Sprintf("copied with kubectl %s\n%s\n", k.Name, strings.Repeat("x", 100000))
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		remote := "/tmp/cp-" + strings.ReplaceAll(k.Name, ".", "-")
		must(t, "", "cp", "-c", "app", src, "stream:"+remote)
		if out := must(t, "", "exec", "stream", "-c", "app", "--", "wc", "-c", remote); !strings.HasPrefix(strings.TrimSpace(out), fmt.Sprint(len(content))) {
			t.Errorf("after cp to the pod, wc -c %s = %q, want %d bytes", remote, out, len(content))
		}
		must(t, "", "exec", "stream", "-c", "app", "--", "sh", "-c", "echo made in the pod > "+remote+".down")
		dst := filepath.Join(dir, "down.txt")
		must(t, "", "cp", "-c", "app", "stream:"+remote+".down", dst)
		if got, err := os.ReadFile(dst); err != nil || string(got) != "made in the pod\n" {
			t.Errorf("cp from the pod wrote %q (%v), want \"made in the pod\\n\"", got, err)
		}
	})

	for _, target := range []string{"pod/stream", "svc/stream"} {
		t.Run("port-forward-"+strings.Split(target, "/")[0], func(t *testing.T) {
			port := ":8080"
			if strings.HasPrefix(target, "svc/") {
				port = ":80"
			}
			w := k.Start(t, kc, "-n", ns, "port-forward", "--address", "127.0.0.1", target, port)
			line, seen, ok := w.Next("Forwarding from 127.0.0.1:", 20*time.Second)
			if !ok {
				w.Stop()
				t.Fatalf("port-forward %s did not report a local port (stdout %q, stderr %q)", target, seen, w.Stderr())
			}
			m := regexp.MustCompile(`127\.0\.0\.1:(\d+) ->`).FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("port-forward line %q has no local port", line)
			}
			for i := 0; i < 3; i++ {
				code, body, err := httpGet("http://127.0.0.1:" + m[1] + "/hostname")
				if err != nil || code != 200 || body != "stream" {
					t.Errorf("GET /hostname through port-forward %s = %d %q (%v), want 200 stream", target, code, body, err)
				}
			}
			w.Stop()
		})
	}
}
