// Package agent is the fleet agent of a downstream cluster: it dials out to
// the upstream with its service account token (no credentials of the
// downstream ever leave it), registers and heartbeats its Cluster, applies
// the Works the upstream places in its execution namespace with server-side
// apply, puts back (or reports) changes made to them in the downstream, and
// reports their state. Every skiff server runs it; it is idle until
// `skiff fleet join` writes the Secret kube-system/skiff-fleet-agent.
package agent

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffdev/skiff/internal/fleet"
	"github.com/skiffdev/skiff/internal/jointoken"
)

// Keys of the agent's Secret.
const (
	keyUpstream = "upstream"
	keyCA       = "ca.crt"
	keyToken    = "token"
	keyCluster  = "cluster"
)

// tokenLifetime is how long the agent's own tokens live; it renews them
// at half-life, so an agent may be cut off from the upstream for up to
// half of it and still reconnect.
const tokenLifetime = 30 * 24 * time.Hour

// Config configures the agent.
type Config struct {
	// Local is the downstream cluster's API (admin).
	Local *rest.Config
	Log   *slog.Logger
	// HeartbeatInterval is how often the Lease is renewed and the
	// cluster's status refreshed (default 10 s).
	HeartbeatInterval time.Duration
	// Elect, when set, runs the agent only while this process leads (the
	// servers of an HA cluster each run Run; one agent acts).
	Elect func(ctx context.Context, run func(context.Context) error) error
}

// JoinOptions are what `skiff fleet join` was given.
type JoinOptions struct {
	Upstream string
	Token    fleet.Token
	Name     string
	Labels   map[string]string
	Region   string
	Zone     string
	Provider string
}

// Join checks the token against the upstream, trades it for a long-lived
// token of the cluster's agent, and stores what the agent needs in the
// downstream (local), whose agent then starts.
func Join(ctx context.Context, local kubernetes.Interface, o JoinOptions) error {
	if err := fleet.ValidateClusterName(o.Name); err != nil {
		return err
	}
	caPEM, err := jointoken.DiscoverCA(o.Upstream, jointoken.Token{CAHash: o.Token.CAHash})
	if err != nil {
		return fmt.Errorf("upstream %s: %w", o.Upstream, err)
	}
	up := &rest.Config{Host: o.Upstream, BearerToken: o.Token.Bearer, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, Timeout: 30 * time.Second}
	upKube, err := kubernetes.NewForConfig(up)
	if err != nil {
		return err
	}
	token, err := renewToken(ctx, upKube, o.Name)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fleet.AgentSecret, Namespace: metav1.NamespaceSystem},
		Data: map[string][]byte{
			keyUpstream: []byte(o.Upstream), keyCA: caPEM, keyToken: []byte(token), keyCluster: []byte(o.Name),
		},
	}
	if len(o.Labels) > 0 || o.Region != "" || o.Zone != "" || o.Provider != "" {
		b, err := json.Marshal(map[string]any{"labels": o.Labels, "region": o.Region, "zone": o.Zone, "provider": o.Provider})
		if err != nil {
			return err
		}
		sec.Data["registration"] = b
	}
	secrets := local.CoreV1().Secrets(metav1.NamespaceSystem)
	if old, err := secrets.Get(ctx, fleet.AgentSecret, metav1.GetOptions{}); err == nil {
		if c := string(old.Data[keyCluster]); c != o.Name || string(old.Data[keyUpstream]) != o.Upstream {
			return fmt.Errorf("this cluster already joined %s as %s: `skiff fleet leave` first", old.Data[keyUpstream], c)
		}
		old.Data = sec.Data
		_, err = secrets.Update(ctx, old, metav1.UpdateOptions{})
		return err
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	return err
}

// Leave stops the agent of a downstream: its Secret goes. The upstream
// keeps the Cluster (NotReady from then on) until deleted there.
func Leave(ctx context.Context, local kubernetes.Interface) error {
	err := local.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, fleet.AgentSecret, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return errors.New("this cluster has not joined a fleet")
	}
	return err
}

// renewToken gets a new token of the cluster's agent account.
func renewToken(ctx context.Context, up kubernetes.Interface, cluster string) (string, error) {
	tr, err := up.CoreV1().ServiceAccounts(fleet.ExecutionNamespace(cluster)).CreateToken(ctx, fleet.AgentAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(tokenLifetime / time.Second))},
	}, metav1.CreateOptions{})
	switch {
	case apierrors.IsUnauthorized(err):
		return "", fmt.Errorf("the upstream refused the token (expired or revoked): %w", err)
	case apierrors.IsForbidden(err) || apierrors.IsNotFound(err):
		return "", fmt.Errorf("the token is not one of cluster %s's (create it with `skiff fleet token create %s` on the upstream): %w", cluster, cluster, err)
	case err != nil:
		return "", err
	}
	return tr.Status.Token, nil
}

// expiry reads a JWT's exp claim (not verified: the upstream does that).
func expiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var claims struct {
		Exp int64 `json:"exp"`
		Iat int64 `json:"iat"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		return time.Time{}, err
	}
	return time.Unix(claims.Exp, 0), nil
}

// Run runs the agent whenever the downstream holds its Secret, and again
// with the new content whenever the Secret changes; idle otherwise.
func Run(ctx context.Context, cfg Config) error {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	local, err := kubernetes.NewForConfig(cfg.Local)
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	var current *corev1.Secret
	lw := cache.NewListWatchFromClient(local.CoreV1().RESTClient(), "secrets", metav1.NamespaceSystem,
		fields.OneTermEqualSelector("metadata.name", fleet.AgentSecret))
	inf := cache.NewSharedInformer(lw, &corev1.Secret{}, 0)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() }, UpdateFunc: func(any, any) { notify() }, DeleteFunc: func(any) { notify() },
	}); err != nil {
		return err
	}
	go inf.Run(ctx.Done())
	var stop context.CancelFunc = func() {}
	done := make(chan error, 1)
	running := false
	defer func() {
		stop()
		if running {
			<-done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			running = false
			if err != nil && ctx.Err() == nil {
				cfg.Log.Warn("fleet agent stopped; starting again in 10s", "err", err)
				time.AfterFunc(10*time.Second, notify)
			}
		case <-changed:
			obj, exists, _ := inf.GetStore().GetByKey(metav1.NamespaceSystem + "/" + fleet.AgentSecret)
			var sec *corev1.Secret
			if exists {
				sec = obj.(*corev1.Secret)
			}
			if running && sec != nil && current != nil && maps.EqualFunc(sec.Data, current.Data, func(a, b []byte) bool { return string(a) == string(b) }) {
				continue
			}
			if running {
				stop()
				<-done
				running = false
			}
			current = sec
			if sec == nil {
				continue
			}
			a, err := newAgent(cfg, local, sec)
			if err != nil {
				cfg.Log.Error("fleet agent: its Secret is not usable; run `skiff fleet join` again", "err", err)
				continue
			}
			var runCtx context.Context
			runCtx, stop = withCancel(ctx) // stopped on the next change or by the deferred stop
			running = true
			go func() {
				if cfg.Elect != nil {
					done <- cfg.Elect(runCtx, a.run)
					return
				}
				done <- a.run(runCtx)
			}()
		}
	}
}

// withCancel is context.WithCancel for a run whose cancel outlives the
// loop iteration that starts it.
func withCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// agent is one run with one Secret's content.
type agent struct {
	cfg     Config
	local   kubernetes.Interface
	cluster string
	up      *rest.Config
	secret  *corev1.Secret
	log     *slog.Logger
}

func newAgent(cfg Config, local kubernetes.Interface, sec *corev1.Secret) (*agent, error) {
	cluster, upstream, token := string(sec.Data[keyCluster]), string(sec.Data[keyUpstream]), string(sec.Data[keyToken])
	if cluster == "" || upstream == "" || token == "" {
		return nil, fmt.Errorf("secret %s/%s lacks %s, %s or %s", metav1.NamespaceSystem, fleet.AgentSecret, keyCluster, keyUpstream, keyToken)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sec.Data[keyCA]) {
		return nil, errors.New("no CA certificate in " + keyCA)
	}
	return &agent{
		cfg: cfg, local: local, cluster: cluster, secret: sec.DeepCopy(),
		up: &rest.Config{Host: upstream, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: sec.Data[keyCA]},
			UserAgent: "skiff-fleet-agent/" + cluster, QPS: cfg.Local.QPS, Burst: cfg.Local.Burst},
		log: cfg.Log.With("fleet_cluster", cluster, "upstream", upstream),
	}, nil
}
