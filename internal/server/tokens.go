package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/skiffdev/skiff/internal/jointoken"
)

// JoinToken is one bootstrap token as `skiff token list` shows it.
type JoinToken struct {
	ID          string
	Expires     time.Time // zero: never
	Usages      []string
	Description string
}

// CreateToken makes a new join token (a bootstrap token Secret, as kubeadm
// makes; ttl 0 never expires) and returns it in the DATA/token form, with
// the hash of the CA at caFile. The controller manager's token cleaner
// deletes it once expired; the API server refuses it from then.
func CreateToken(ctx context.Context, client kubernetes.Interface, caFile string, ttl time.Duration, description string, now time.Time) (jointoken.Token, error) {
	hash, err := jointoken.HashFile(caFile)
	if err != nil {
		return jointoken.Token{}, err
	}
	if description == "" {
		description = "skiff node join token (skiff token create)"
	}
	for attempt := 0; ; attempt++ {
		t := jointoken.Token{CAHash: hash, ID: randomString(6), Secret: randomString(16)}
		secret := bootstrapSecret(t, description)
		if ttl > 0 {
			secret.StringData[bootstrapapi.BootstrapTokenExpirationKey] = now.Add(ttl).UTC().Format(time.RFC3339)
		}
		_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) && attempt < 3 {
			continue // another token has this id
		}
		if err != nil {
			return jointoken.Token{}, fmt.Errorf("create join token: %w", err)
		}
		return t, nil
	}
}

// bootstrapSecret is the Secret that makes t a bootstrap token for joining
// nodes (authentication) and for signing the cluster-info ConfigMap.
func bootstrapSecret(t jointoken.Token, description string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.BootstrapTokenSecretPrefix + t.ID, Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               t.ID,
			bootstrapapi.BootstrapTokenSecretKey:           t.Secret,
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenDescriptionKey:      description,
		},
	}
}

// ListTokens lists the bootstrap tokens, soonest expiry first (those that
// never expire last).
func ListTokens(ctx context.Context, client kubernetes.Interface) ([]JoinToken, error) {
	list, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	var out []JoinToken
	for _, s := range list.Items {
		t := JoinToken{ID: string(s.Data[bootstrapapi.BootstrapTokenIDKey]), Description: string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey])}
		if t.ID == "" {
			continue
		}
		if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
			t.Expires, _ = time.Parse(time.RFC3339, exp)
		}
		for k, v := range s.Data {
			if u, ok := strings.CutPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix); ok && string(v) == "true" {
				t.Usages = append(t.Usages, u)
			}
		}
		sort.Strings(t.Usages)
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Expires, out[j].Expires
		switch {
		case a.IsZero() != b.IsZero():
			return b.IsZero()
		case !a.Equal(b):
			return a.Before(b)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteToken deletes the bootstrap token with this id (or the id of a
// whole token, "K10…::id.secret" or "id.secret").
func DeleteToken(ctx context.Context, client kubernetes.Interface, idOrToken string) (string, error) {
	id := idOrToken
	if t, err := jointoken.Parse(idOrToken); err == nil {
		id = t.ID
	}
	err := client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstrapapi.BootstrapTokenSecretPrefix+id, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return id, fmt.Errorf("join token %s not found", id)
	}
	return id, err
}
