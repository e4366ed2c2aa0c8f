package secretsencrypt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)

func key(name string, b byte) Key { return Key{Name: name, Secret: bytes.Repeat([]byte{b}, keySize)} }

func TestRenderParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State
		order []string // providers in the rendered file
	}{
		{"enabled", State{Enabled: true, Keys: []Key{key("a", 1)}}, []string{"secretbox", "identity"}},
		{"rotating", State{Enabled: true, Keys: []Key{key("b", 2), key("a", 1)}}, []string{"secretbox", "identity"}},
		{"disabled-with-keys", State{Keys: []Key{key("a", 1)}}, []string{"identity", "secretbox"}},
		{"disabled", State{}, []string{"identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Render(tc.state)
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			at := -1
			for _, p := range tc.order {
				i := strings.Index(text, p+":")
				if i < at {
					t.Fatalf("providers out of order, want %v:\n%s", tc.order, text)
				}
				at = i
			}
			got, err := Parse(data)
			if err != nil {
				t.Fatalf("parse %s: %v", text, err)
			}
			if got.Enabled != tc.state.Enabled || len(got.Keys) != len(tc.state.Keys) {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.state)
			}
			for i := range got.Keys {
				if got.Keys[i].Name != tc.state.Keys[i].Name || !bytes.Equal(got.Keys[i].Secret, tc.state.Keys[i].Secret) {
					t.Fatalf("key %d: got %+v, want %+v", i, got.Keys[i], tc.state.Keys[i])
				}
			}
		})
	}
	if _, err := Render(State{Enabled: true}); err == nil {
		t.Error("enabled without a key rendered")
	}
}

func TestParseRefusesOtherShapes(t *testing.T) {
	for name, text := range map[string]string{
		"aescbc": `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: k, secret: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}]}
  - identity: {}
`,
		"configmaps too": `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, configmaps]
  providers:
  - identity: {}
`,
		"short key": `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - secretbox: {keys: [{name: k, secret: c2hvcnQ=}]}
  - identity: {}
`,
		"no identity": `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - secretbox: {keys: [{name: k, secret: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}]}
`,
		"unknown field": "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresource: []\n",
	} {
		if _, err := Parse([]byte(text)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestRotationSteps(t *testing.T) {
	s := State{Enabled: true, Keys: []Key{key("a", 1)}}
	s = s.WithKey(key("b", 2))
	if s.Stage() != StagePrepare || s.Keys[0].Name != "a" || s.Keys[1].Name != "b" {
		t.Fatalf("after a new key: %+v", s)
	}
	if again := s.WithKey(key("b", 3)); again.Keys[1].Name == "b" {
		t.Fatalf("a new key took an existing name: %+v", again.Keys)
	}
	s = s.NewestPrimary()
	if s.Stage() != StageReencrypt || s.Keys[0].Name != "b" || s.Keys[1].Name != "a" {
		t.Fatalf("after the new key became primary: %+v", s)
	}
	s = s.PrimaryOnly()
	if s.Stage() != StageStart || len(s.Keys) != 1 || s.Keys[0].Name != "b" {
		t.Fatalf("after pruning: %+v", s)
	}
}

func TestEnsure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cred", "encryption-config.yaml")
	if ok, err := Ensure(path, false, t0); err != nil || ok {
		t.Fatalf("disabled on a new cluster: ok=%v err=%v, want no file", ok, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("disabled on a new cluster wrote a file: %v", err)
	}
	if ok, err := Ensure(path, true, t0); err != nil || !ok {
		t.Fatalf("enable: ok=%v err=%v", ok, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v, want mode 0600", fi, err)
	}
	first, _, err := Load(path)
	if err != nil || !first.Enabled || len(first.Keys) != 1 {
		t.Fatalf("after enabling: %+v %v", first, err)
	}
	// A restart keeps the key.
	if _, err := Ensure(path, true, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	again, _, _ := Load(path)
	if again.Keys[0].Name != first.Keys[0].Name || !bytes.Equal(again.Keys[0].Secret, first.Keys[0].Secret) {
		t.Fatalf("restart changed the key: %+v → %+v", first.Keys, again.Keys)
	}
	// Disabling keeps the key for reading.
	if ok, err := Ensure(path, false, t0); err != nil || !ok {
		t.Fatalf("disable: ok=%v err=%v", ok, err)
	}
	off, _, _ := Load(path)
	if off.Enabled || len(off.Keys) != 1 || off.Keys[0].Name != first.Keys[0].Name {
		t.Fatalf("disabled state %+v, want the key kept", off)
	}
}
