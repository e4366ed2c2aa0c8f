package secretsencrypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Rotator replaces the primary key of the configuration at Path and
// re-encrypts every Secret with the new one, through the API servers that
// read the configuration.
type Rotator struct {
	Path   string
	Client kubernetes.Interface
	// Servers are clients of every API server that reads a copy of the
	// configuration (the servers of an HA cluster); empty means Client's
	// alone.
	Servers []kubernetes.Interface
	// Publish, when set, hands each new configuration to the other servers
	// (before it is written to Path); the rotation then waits until every
	// one of Servers has loaded it.
	Publish func(ctx context.Context, data []byte) error
	// Out receives one line per step (nil: none).
	Out io.Writer
	// LoadTimeout bounds each wait for the API servers to load the file
	// (default 2 minutes; each polls its file every few seconds).
	LoadTimeout time.Duration
	Now         func() time.Time
}

// Rotate runs the rotation, or resumes one that was interrupted (the file
// lists more than one key) from the stage the keys show: a new key is
// added after the primary and loaded by every API server, then made the
// primary and loaded, then every Secret is rewritten, then the older keys
// are dropped. No API server ever reads a Secret encrypted with a key it
// has not loaded.
func (r *Rotator) Rotate(ctx context.Context) error {
	s, _, err := Load(r.Path)
	if err != nil {
		return err
	}
	if !s.Enabled {
		return errors.New("secrets encryption is disabled on this server (skiff server --secrets-encryption=false): there is no key to rotate")
	}
	if s.Stage() == StageStart {
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		k, err := NewKey(now())
		if err != nil {
			return err
		}
		s = s.WithKey(k)
		r.say("new key %s added after the primary %s: every API server decrypts with it before any encrypts with it", s.Keys[1].Name, s.Keys[0].Name)
	} else {
		r.say("resuming a rotation at stage %s: primary key %s, %d other keys", s.Stage(), s.Keys[0].Name, len(s.Keys)-1)
	}
	if err := r.apply(ctx, s); err != nil {
		return err
	}
	if s.Stage() == StagePrepare {
		s = s.NewestPrimary()
		r.say("key %s made the primary; the older keys still decrypt", s.Keys[0].Name)
		if err := r.apply(ctx, s); err != nil {
			return err
		}
	}
	n, err := Reencrypt(ctx, r.Client)
	if err != nil {
		return err
	}
	r.say("%d Secrets re-encrypted with %s", n, s.Keys[0].Name)
	if err := r.apply(ctx, s.PrimaryOnly()); err != nil {
		return err
	}
	r.say("older keys removed; rotation done")
	return nil
}

// apply publishes s, writes it to Path and waits until every API server
// has loaded it.
func (r *Rotator) apply(ctx context.Context, s State) error {
	data, err := Render(s)
	if err != nil {
		return err
	}
	if r.Publish != nil {
		if err := r.Publish(ctx, data); err != nil {
			return fmt.Errorf("share the configuration with the other servers: %w", err)
		}
	}
	if _, err := Write(r.Path, s); err != nil {
		return err
	}
	return r.waitLoaded(ctx, data)
}

func (r *Rotator) say(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format+"\n", args...)
	}
}

// waitLoaded waits until every API server has loaded the content data.
func (r *Rotator) waitLoaded(ctx context.Context, data []byte) error {
	timeout := r.LoadTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	servers := r.Servers
	if len(servers) == 0 {
		servers = []kubernetes.Interface{r.Client}
	}
	for i, c := range servers {
		var last []string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			loaded, hashes, err := Loaded(ctx, c, data)
			last = hashes
			return err == nil && loaded, nil
		})
		if err != nil {
			return fmt.Errorf("API server %d of %d did not load %s (hash %s) within %s (it reports %v): %w", i+1, len(servers), r.Path, Hash(data), timeout, last, err)
		}
	}
	if len(servers) == 1 {
		r.say("the API server has loaded the configuration")
	} else {
		r.say("all %d API servers have loaded the configuration", len(servers))
	}
	return nil
}

// Loaded reports whether the API server has loaded a configuration whose
// content is data, and the hashes it reports.
func Loaded(ctx context.Context, c kubernetes.Interface, data []byte) (bool, []string, error) {
	hashes, err := LoadedHashes(ctx, c)
	if err != nil {
		return false, nil, err
	}
	want := Hash(data)
	for _, h := range hashes {
		if h == want {
			return true, hashes, nil
		}
	}
	return false, hashes, nil
}

// lastConfigInfo matches the hash label of the API server's metric naming
// the encryption configuration it has loaded.
var lastConfigInfo = regexp.MustCompile(`^apiserver_encryption_config_controller_last_config_info\{.*\bhash="([^"]+)"`)

// LoadedHashes are the hashes of the encryption configurations the API
// server reports as loaded (one per API server identity).
func LoadedHashes(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the API server's metrics: %w", err)
	}
	var hashes []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m := lastConfigInfo.FindSubmatch(sc.Bytes()); m != nil {
			hashes = append(hashes, string(m[1]))
		}
	}
	return hashes, sc.Err()
}

// Reencrypt writes every Secret back unchanged, a page at a time; the API
// server stores each with its current primary provider. A Secret changed or
// deleted since it was listed is skipped: that write used the current
// configuration already. It returns how many it wrote.
func Reencrypt(ctx context.Context, c kubernetes.Interface) (int, error) {
	written, restarts := 0, 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := c.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, opts)
		if apierrors.IsResourceExpired(err) && restarts < 3 {
			// The continue token outlived a compaction: list again
			// from the start (rewriting a Secret twice is harmless).
			restarts++
			opts.Continue = ""
			continue
		}
		if err != nil {
			return written, fmt.Errorf("list Secrets: %w", err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			_, err := c.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
			switch {
			case err == nil:
				written++
			case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			default:
				return written, fmt.Errorf("re-encrypt Secret %s/%s: %w", s.Namespace, s.Name, err)
			}
		}
		if list.Continue == "" {
			return written, nil
		}
		opts.Continue = list.Continue
	}
}
