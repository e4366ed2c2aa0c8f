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
// re-encrypts every Secret with the new one, through the API server that
// reads Path.
type Rotator struct {
	Path   string
	Client kubernetes.Interface
	// Out receives one line per step (nil: none).
	Out io.Writer
	// LoadTimeout bounds each wait for the API server to load the file
	// (default 2 minutes; it polls the file every few seconds).
	LoadTimeout time.Duration
	Now         func() time.Time
}

// Rotate runs the rotation, or resumes one that was interrupted (the file
// still lists older keys): it then re-encrypts with the primary it has.
func (r *Rotator) Rotate(ctx context.Context) error {
	s, data, err := Load(r.Path)
	if err != nil {
		return err
	}
	if !s.Enabled {
		return errors.New("secrets encryption is disabled on this server (skiff server --secrets-encryption=false): there is no key to rotate")
	}
	if len(s.Keys) == 1 {
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		k, err := NewKey(now())
		if err != nil {
			return err
		}
		s = s.WithPrimary(k)
		if data, err = Write(r.Path, s); err != nil {
			return err
		}
		r.say("new primary key %s written; the old key %s still decrypts", s.Keys[0].Name, s.Keys[1].Name)
	} else {
		r.say("resuming a rotation: primary key %s, %d older keys", s.Keys[0].Name, len(s.Keys)-1)
	}
	if err := r.waitLoaded(ctx, data); err != nil {
		return err
	}
	n, err := Reencrypt(ctx, r.Client)
	if err != nil {
		return err
	}
	r.say("%d Secrets re-encrypted with %s", n, s.Keys[0].Name)
	if data, err = Write(r.Path, s.PrimaryOnly()); err != nil {
		return err
	}
	if err := r.waitLoaded(ctx, data); err != nil {
		return err
	}
	r.say("older keys removed; rotation done")
	return nil
}

func (r *Rotator) say(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format+"\n", args...)
	}
}

// waitLoaded waits until the API server has loaded the file's content data.
func (r *Rotator) waitLoaded(ctx context.Context, data []byte) error {
	timeout := r.LoadTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	var last []string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		loaded, hashes, err := Loaded(ctx, r.Client, data)
		last = hashes
		return err == nil && loaded, nil
	})
	if err != nil {
		return fmt.Errorf("the API server did not load %s (hash %s) within %s (it reports %v): %w", r.Path, Hash(data), timeout, last, err)
	}
	r.say("the API server has loaded the configuration")
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
