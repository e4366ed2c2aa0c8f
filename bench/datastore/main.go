// Command datastore benchmarks what issue 14 asks of the datastore: Secret
// write and read throughput with encryption at rest on and off (a ratio
// from one run), and the time to save and restore an etcd snapshot of
// -objects objects.
//
//	make build && go run ./bench/datastore -skiff bin/skiff
//	go run ./bench/datastore -skiff bin/skiff -secrets 5000 -objects 100000
//
// Secrets: for each round, a fresh `skiff server --disable-agent` with
// encryption (the default, secretbox) and one with --secrets-encryption=
// false, one after the other, each timed creating -secrets Secrets of 1 KiB
// from -workers goroutines, then reading each back with a quorum GET (from
// etcd, decrypted), then listing them all. Snapshot: a server filled with
// -objects ConfigMaps of 100 bytes; `skiff etcd-snapshot save` timed; the
// server stopped; `skiff server --cluster-reset --cluster-reset-restore-path`
// timed; the server started again, timed to /readyz, and the ConfigMaps
// counted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffdev/skiff/bench/internal/benchkit"
)

type options struct {
	skiff            string
	secrets, objects int
	workers, rounds  int
}

func main() {
	var o options
	flag.StringVar(&o.skiff, "skiff", "bin/skiff", "skiff binary")
	flag.IntVar(&o.secrets, "secrets", 5000, "Secrets written and read per server")
	flag.IntVar(&o.objects, "objects", 100000, "ConfigMaps in the snapshot (0: skip the snapshot part)")
	flag.IntVar(&o.workers, "workers", 8, "concurrent clients")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of encryption on, then off")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	benchkit.PrintHeader(os.Stdout, "skiff datastore: Secrets encrypted at rest, etcd snapshots", o.skiff)
	load := benchkit.StartLoadSampler(ctx, 5*time.Second)
	dir, err := os.MkdirTemp("", "bench-datastore-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	var r benchkit.Report
	if err := secrets(ctx, o, dir, &r); err != nil {
		fail(err)
	}
	if o.objects > 0 {
		if err := snapshot(ctx, o, dir, &r); err != nil {
			os.RemoveAll(dir)
			fail(err)
		}
	}
	r.Add("load average during the run", load.Stop())
	r.Print(os.Stdout)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "datastore:", err)
	os.Exit(1)
}

// serverArgs keep the server to the API server and its datastore.
var serverArgs = []string{"--disable-agent", "--disable-dns", "--disable-gateway-api", "--etcd-disable-snapshots"}

// start starts a server on dataDir (on port, 0: a free one) and waits
// until it is ready.
func start(ctx context.Context, o options, dataDir string, port int, extra ...string) (*benchkit.Server, *kubernetes.Clientset, error) {
	s, err := benchkit.StartServer(benchkit.ServerOptions{Binary: o.skiff, DataDir: dataDir, Port: port, Args: append(append([]string{}, serverArgs...), extra...)})
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.WaitReady(ctx, 3*time.Minute); err != nil {
		s.Stop()
		return nil, nil, err
	}
	cfg, err := benchkit.RestConfig(s.Kubeconfig())
	if err != nil {
		s.Stop()
		return nil, nil, err
	}
	c, err := benchkit.Clientset(cfg)
	if err != nil {
		s.Stop()
		return nil, nil, err
	}
	return s, c, nil
}

// parallel runs f(i) for i in [0, n) on workers goroutines and returns the
// rate per second.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) (float64, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	began := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(began).Seconds(), firstErr
}

type rates struct{ write, read, list float64 }

func secrets(ctx context.Context, o options, dir string, r *benchkit.Report) error {
	value := strings.Repeat("s", 1024)
	var on, off []rates
	for round := 0; round < o.rounds; round++ {
		for _, enc := range []bool{true, false} {
			dataDir := filepath.Join(dir, fmt.Sprintf("secrets-%d-%v", round, enc))
			s, c, err := start(ctx, o, dataDir, 0, fmt.Sprintf("--secrets-encryption=%v", enc))
			if err != nil {
				return err
			}
			var x rates
			x.write, err = parallel(ctx, o.secrets, o.workers, func(ctx context.Context, i int) error {
				_, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)},
					StringData: map[string]string{"value": value},
				}, metav1.CreateOptions{})
				return err
			})
			if err == nil {
				x.read, err = parallel(ctx, o.secrets, o.workers, func(ctx context.Context, i int) error {
					_, err := c.CoreV1().Secrets("default").Get(ctx, fmt.Sprintf("s-%d", i), metav1.GetOptions{})
					return err
				})
			}
			if err == nil {
				// Full lists from etcd (resourceVersion ""), each decrypting every Secret.
				x.list, err = parallel(ctx, 10, 1, func(ctx context.Context, _ int) error {
					l, err := c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
					if err == nil && len(l.Items) < o.secrets {
						err = fmt.Errorf("listed %d Secrets, want %d", len(l.Items), o.secrets)
					}
					return err
				})
				x.list *= float64(o.secrets) // Secrets listed per second
			}
			s.Stop()
			if err != nil {
				return err
			}
			fmt.Printf("round %d encryption=%v: %.0f writes/s, %.0f reads/s, %.0f Secrets listed/s\n", round+1, enc, x.write, x.read, x.list)
			if enc {
				on = append(on, x)
			} else {
				off = append(off, x)
			}
		}
	}
	mean := func(xs []rates, f func(rates) float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += f(x)
		}
		return sum / float64(len(xs))
	}
	for _, m := range []struct {
		name string
		f    func(rates) float64
	}{{"Secret creates/s", func(x rates) float64 { return x.write }}, {"Secret GETs/s (quorum)", func(x rates) float64 { return x.read }}, {"Secrets listed/s (full lists)", func(x rates) float64 { return x.list }}} {
		a, b := mean(on, m.f), mean(off, m.f)
		r.Add(fmt.Sprintf("%s, encrypted / plain (%d workers)", m.name, o.workers), fmt.Sprintf("%.0f / %.0f = %.2f×", a, b, a/b))
	}
	return nil
}

func snapshot(ctx context.Context, o options, dir string, r *benchkit.Report) error {
	dataDir := filepath.Join(dir, "snapshot")
	s, c, err := start(ctx, o, dataDir, 0)
	if err != nil {
		return err
	}
	port := s.Port
	value := strings.Repeat("c", 100)
	rate, err := parallel(ctx, o.objects, 2*o.workers, func(ctx context.Context, i int) error {
		_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)},
			Data:       map[string]string{"v": value},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		s.Stop()
		return err
	}
	fmt.Printf("filled with %d ConfigMaps at %.0f/s\n", o.objects, rate)
	began := time.Now()
	out, err := exec.CommandContext(ctx, o.skiff, "etcd-snapshot", "save", "--data-dir", dataDir, "--name", "bench").CombinedOutput()
	save := time.Since(began)
	if err != nil {
		s.Stop()
		return fmt.Errorf("etcd-snapshot save: %v: %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "snapshots", "bench-*"))
	var file string
	var size int64
	for _, f := range files {
		if filepath.Ext(f) == "" || !strings.Contains(filepath.Base(f), ".") {
			if fi, err := os.Stat(f); err == nil {
				file, size = f, fi.Size()
			}
		}
	}
	r.Add(fmt.Sprintf("etcd-snapshot save, %d ConfigMaps (%.0f MB file)", o.objects, float64(size)/1e6), save.Round(time.Millisecond).String())
	if err := s.Stop(); err != nil {
		return err
	}
	began = time.Now()
	if out, err := exec.CommandContext(ctx, o.skiff, "server", "--data-dir", dataDir, "--cluster-reset", "--cluster-reset-restore-path", file).CombinedOutput(); err != nil {
		return fmt.Errorf("cluster-reset: %v: %s", err, out)
	}
	restore := time.Since(began)
	r.Add("server --cluster-reset --cluster-reset-restore-path (verify + restore)", restore.Round(time.Millisecond).String())
	// The same port: the admin kubeconfig names it.
	s, c, err = start(ctx, o, dataDir, port)
	if err != nil {
		return err
	}
	defer s.Stop()
	ready := time.Since(s.Started)
	r.Add("then skiff server to /readyz on the restored data", ready.Round(time.Millisecond).String())
	n, cont := 0, ""
	for {
		l, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 5000, Continue: cont})
		if err != nil {
			return err
		}
		n += len(l.Items)
		if cont = l.Continue; cont == "" {
			break
		}
	}
	if n < o.objects {
		return fmt.Errorf("restored %d ConfigMaps, want %d", n, o.objects)
	}
	r.Add("ConfigMaps after restore", fmt.Sprint(n))
	return nil
}
