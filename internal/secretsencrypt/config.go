package secretsencrypt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"
)

// keySize is secretbox's key length in bytes.
const keySize = 32

// Key is one secretbox key.
type Key struct {
	// Name is written before every value it encrypts
	// (k8s:enc:secretbox:v1:NAME:…), so it must not change.
	Name   string
	Secret []byte
}

// State is what an encryption configuration says.
type State struct {
	// Enabled means new writes are encrypted with Keys[0].
	Enabled bool
	// Keys are the secretbox keys, the primary first.
	Keys []Key
}

// Stage names where a rotation stands: StageStart with one key;
// StagePrepare while a newer key than the primary is listed (every API
// server learns it before any encrypts with it); StageReencrypt while the
// newest key is the primary and older keys remain (a rotation under way, or
// interrupted).
const (
	StageStart     = "start"
	StagePrepare   = "prepare"
	StageReencrypt = "reencrypt"
)

// Stage is the rotation stage the keys show.
func (s State) Stage() string {
	switch {
	case len(s.Keys) <= 1:
		return StageStart
	case s.newest() != 0:
		return StagePrepare
	}
	return StageReencrypt
}

// newest is the index of the newest key: their names carry the time they
// were made (NewKey), and sort by it.
func (s State) newest() int {
	n := 0
	for i, k := range s.Keys {
		if k.Name > s.Keys[n].Name {
			n = i
		}
	}
	return n
}

// WithKey is s with k listed after the primary: it decrypts, and encrypts
// nothing yet.
func (s State) WithKey(k Key) State {
	for _, old := range s.Keys {
		if old.Name == k.Name {
			k.Name += "-" + fmt.Sprint(len(s.Keys))
		}
	}
	keys := append([]Key{}, s.Keys[:min(1, len(s.Keys))]...)
	keys = append(keys, k)
	keys = append(keys, s.Keys[min(1, len(s.Keys)):]...)
	return State{Enabled: s.Enabled, Keys: keys}
}

// NewestPrimary is s with its newest key made the primary, the others kept.
func (s State) NewestPrimary() State {
	n := s.newest()
	keys := append([]Key{s.Keys[n]}, s.Keys[:n]...)
	keys = append(keys, s.Keys[n+1:]...)
	return State{Enabled: s.Enabled, Keys: keys}
}

// NewKey is a fresh random key named after the time.
func NewKey(now time.Time) (Key, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	return Key{Name: "secretbox-" + now.UTC().Format("20060102T150405Z"), Secret: secret}, nil
}

// PrimaryOnly is s without the keys older than its primary.
func (s State) PrimaryOnly() State {
	if len(s.Keys) <= 1 {
		return s
	}
	return State{Enabled: s.Enabled, Keys: s.Keys[:1]}
}

// Render is the EncryptionConfiguration for s: Secrets only, secretbox
// then identity when enabled, identity then secretbox when not.
func Render(s State) ([]byte, error) {
	if s.Enabled && len(s.Keys) == 0 {
		return nil, errors.New("encryption enabled without a key")
	}
	identity := apiserverv1.ProviderConfiguration{Identity: &apiserverv1.IdentityConfiguration{}}
	var providers []apiserverv1.ProviderConfiguration
	if len(s.Keys) > 0 {
		box := &apiserverv1.SecretboxConfiguration{}
		for _, k := range s.Keys {
			if len(k.Secret) != keySize {
				return nil, fmt.Errorf("key %s: %d bytes, want %d", k.Name, len(k.Secret), keySize)
			}
			box.Keys = append(box.Keys, apiserverv1.Key{Name: k.Name, Secret: base64.StdEncoding.EncodeToString(k.Secret)})
		}
		providers = append(providers, apiserverv1.ProviderConfiguration{Secretbox: box})
	}
	if s.Enabled {
		providers = append(providers, identity)
	} else {
		providers = append([]apiserverv1.ProviderConfiguration{identity}, providers...)
	}
	cfg := apiserverv1.EncryptionConfiguration{
		Resources: []apiserverv1.ResourceConfiguration{{Resources: []string{"secrets"}, Providers: providers}},
	}
	cfg.APIVersion, cfg.Kind = apiserverv1.SchemeGroupVersion.String(), "EncryptionConfiguration"
	return yaml.Marshal(cfg)
}

// Parse reads a configuration Render wrote. One written by hand in another
// shape (other resources or providers) is refused: skiff would not know how
// to rotate it.
func Parse(data []byte) (State, error) {
	var cfg apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return State{}, err
	}
	if len(cfg.Resources) != 1 || len(cfg.Resources[0].Resources) != 1 || cfg.Resources[0].Resources[0] != "secrets" {
		return State{}, errors.New("not skiff's configuration: it must encrypt the resource secrets alone")
	}
	var s State
	identityAt := -1
	for i, p := range cfg.Resources[0].Providers {
		switch {
		case p.Identity != nil && identityAt < 0:
			identityAt = i
		case p.Secretbox != nil && len(s.Keys) == 0:
			for _, k := range p.Secretbox.Keys {
				secret, err := base64.StdEncoding.DecodeString(k.Secret)
				if err != nil || len(secret) != keySize {
					return State{}, fmt.Errorf("secretbox key %s: want %d bytes in base64", k.Name, keySize)
				}
				s.Keys = append(s.Keys, Key{Name: k.Name, Secret: secret})
			}
			s.Enabled = identityAt < 0
		default:
			return State{}, fmt.Errorf("not skiff's configuration: provider %d is neither secretbox nor identity, or repeats one", i+1)
		}
	}
	if identityAt < 0 {
		return State{}, errors.New("not skiff's configuration: no identity provider")
	}
	return s, nil
}

// Hash is how the API server names a configuration file's content in its
// metrics.
func Hash(data []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(data)) }

// Load reads and parses the file at path.
func Load(path string) (State, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return State{}, nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return State{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, data, nil
}

// Write renders s into path atomically (a crash leaves the old file or the
// new one, never a mix), readable by root only. It returns the content.
func Write(path string, s State) ([]byte, error) {
	data, err := Render(s)
	if err != nil {
		return nil, err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return data, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".encryption-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	return data, os.Rename(tmp.Name(), path)
}

// Ensure brings the file at path in line with the server's setting: a
// missing file is created (with a new key when enabled; not at all when
// disabled, and then the API server needs no configuration: ok is false),
// an existing one keeps its keys and has its order set. Turning encryption
// off never drops a key: Secrets written under it stay readable.
func Ensure(path string, enabled bool, now time.Time) (ok bool, err error) {
	s, _, err := Load(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !enabled {
			return false, nil
		}
	case err != nil:
		return false, err
	}
	s.Enabled = enabled
	if enabled && len(s.Keys) == 0 {
		k, err := NewKey(now)
		if err != nil {
			return false, err
		}
		s.Keys = []Key{k}
	}
	_, err = Write(path, s)
	return err == nil, err
}
