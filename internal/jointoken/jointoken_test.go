package jointoken

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdev/skiff/internal/pki"
)

func TestParseAndString(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in      string
		want    Token
		wantErr string
	}{
		{in: "abcdef.0123456789abcdef", want: Token{ID: "abcdef", Secret: "0123456789abcdef"}},
		{in: "K10" + hash + "::abcdef.0123456789abcdef\n", want: Token{CAHash: hash, ID: "abcdef", Secret: "0123456789abcdef"}},
		{in: "K10" + hash + "abcdef.0123456789abcdef", wantErr: "missing '::'"},
		{in: "K10xyz::abcdef.0123456789abcdef", wantErr: "64 hex digits"},
		{in: "ABCDEF.0123456789abcdef", wantErr: "expected id.secret"},
		{in: "abcdef.short", wantErr: "expected id.secret"},
		{in: "", wantErr: "expected id.secret"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if again, err := Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(String()) round trip of %+v = %+v, %v", got, again, err)
		}
	}
}

// TestDiscoverCA checks that the agent trusts the server's CA only when it
// matches the token's hash.
func TestDiscoverCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveWith(t, ca, dir)

	hash, err := Hash(ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DiscoverCA(srv.URL, Token{CAHash: hash, ID: "abcdef", Secret: "0123456789abcdef"})
	if err != nil {
		t.Fatalf("DiscoverCA with the right hash: %v", err)
	}
	if string(got) != string(ca.PEM) {
		t.Errorf("discovered CA differs from the cluster CA")
	}
	if _, err := DiscoverCA(srv.URL, Token{CAHash: strings.Repeat("00", 32), ID: "abcdef", Secret: "0123456789abcdef"}); err == nil {
		t.Error("DiscoverCA with a wrong hash succeeded")
	}
	if _, err := DiscoverCA(srv.URL, Token{ID: "abcdef", Secret: "0123456789abcdef"}); err == nil {
		t.Error("DiscoverCA without a hash succeeded")
	}
}

// TestDiscoverCAAfterRotation checks that tokens naming the old CA and the
// new one both join a server whose CA was rotated, and learn both CAs.
func TestDiscoverCAAfterRotation(t *testing.T) {
	dir := t.TempDir()
	old, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.RotateCA(dir, filepath.Join(dir, "rotated"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := serveWith(t, ca, dir)
	for name, pemData := range map[string][]byte{"old": old.PEM, "new": ca.PEM} {
		hash, err := Hash(pemData)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DiscoverCA(srv.URL, Token{CAHash: hash, ID: "abcdef", Secret: "0123456789abcdef"})
		if err != nil {
			t.Fatalf("DiscoverCA with the %s CA's hash: %v", name, err)
		}
		if string(got) != string(ca.PEM) {
			t.Errorf("DiscoverCA with the %s CA's hash returned\n%s\nwant the bundle\n%s", name, got, ca.PEM)
		}
	}
}

// serveWith starts a TLS server with a serving certificate of ca (issued
// into dir), closed when the test ends.
func serveWith(t *testing.T, ca *pki.CA, dir string) *httptest.Server {
	t.Helper()
	certFile, keyFile, err := ca.Ensure(dir, "serving", pki.Leaf{CommonName: "test", DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	if srv.TLS, err = loadKeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
