package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostsTOML is containerd's hosts.toml that makes the mirror at mirrorURL
// (http://127.0.0.1:PORT) the first endpoint of a registry host, for pulls
// and resolving; containerd goes on to the host itself after it. In a
// certs.d directory's _default it serves every host.
func HostsTOML(mirrorURL string) string {
	return fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", mirrorURL)
}

// Mirror is a loopback, read-only OCI registry over a node's own image
// store, for containerd to use as the first endpoint of every registry host,
// so that a pull of an image the node holds (imagePullPolicy Always) needs
// no network; in containerd 2.x's registry hosts directory,
// certs.d/_default/hosts.toml (HostsTOML):
//
//	[host."http://127.0.0.1:PORT"]
//	  capabilities = ["pull", "resolve"]
//
// It serves only the images its Store lists (the agent's: those imported
// from tarballs, not those pulled from registries, so that Always still
// asks a reachable registry for those), and of their content only what
// those images reference. An image localhost/skiff/testhost:latest is served
// as repository skiff/testhost, tag latest; registry.k8s.io/pause:3.10 as
// repository pause (containerd names the registry host in the query
// parameter "ns" when it asks a mirror; without it, a repository of two
// registries is served from the first in order).
//
// What it does not serve it answers 404, and containerd goes on to the
// image's own registry.
type Mirror struct {
	l     net.Listener
	store Store

	mu sync.Mutex
	// listed is the store's last listing, taken at listedAt: the blobs
	// of a pull are checked against it rather than listing once per blob.
	listed   map[string]string
	listedAt time.Time
	// refs caches, per root digest, the digests reachable from it
	// (content is immutable, so an entry never goes stale).
	refs map[string]map[string]bool
}

// Store is the content a Mirror serves.
type Store interface {
	// Images lists the images to serve: reference (as containerd names
	// it, "docker.io/library/nginx:1.27") to the digest of its manifest
	// or index.
	Images(ctx context.Context) (map[string]string, error)
	// Open opens the blob of digest ("sha256:…"); fs.ErrNotExist when the
	// store lacks it.
	Open(digest string) (*os.File, error)
}

// ContentStore is a Store over a containerd content store directory
// (ROOT/io.containerd.content.v1.content) and a function listing images.
type ContentStore struct {
	Dir  string
	List func(ctx context.Context) (map[string]string, error)
}

// Images implements Store.
func (s ContentStore) Images(ctx context.Context) (map[string]string, error) { return s.List(ctx) }

// Open implements Store.
func (s ContentStore) Open(digest string) (*os.File, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return os.Open(filepath.Join(s.Dir, "blobs", h.Algorithm, h.Hex))
}

// NewMirror listens on addr (for example "127.0.0.1:0") to serve store.
func NewMirror(addr string, store Store) (*Mirror, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("images: mirror: %w", err)
	}
	return &Mirror{l: l, store: store, refs: map[string]map[string]bool{}}, nil
}

// containerdHost is the host containerd's mirror configuration names for
// registry r: Docker Hub's index host is "docker.io" there.
func containerdHost(r string) string {
	if r == name.DefaultRegistry {
		return "docker.io"
	}
	return r
}

// Addr is the address the mirror listens on, host:port.
func (m *Mirror) Addr() string { return m.l.Addr().String() }

// URL is the mirror's endpoint for containerd's config, http://host:port.
func (m *Mirror) URL() string { return "http://" + m.Addr() }

// Run serves the registry until ctx ends, then stops, waiting up to five
// seconds for pulls in flight, and returns after the server has exited.
func (m *Mirror) Run(ctx context.Context) error {
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(m.l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("images: mirror: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("images: mirror: %w", err)
	}
	return nil
}

// Close releases the listening address. Only needed when Run is never
// called; Run closes it itself.
func (m *Mirror) Close() error { return m.l.Close() }

// ServeHTTP answers the read side of the OCI distribution API: the version
// check, manifests by tag or digest, blobs by digest.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this mirror is read-only")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == r.URL.Path {
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a registry path")
		return
	}
	if p == "" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		i := strings.LastIndex(p, kind)
		if i <= 0 {
			continue
		}
		repo, ref := p[:i], p[i+len(kind):]
		var digest string
		if kind == "/manifests/" {
			digest = m.resolve(r.Context(), r.URL.Query().Get("ns"), repo, ref)
		} else if m.served(r.Context(), ref) {
			digest = ref
		}
		if digest == "" {
			code := map[string]string{"/manifests/": "MANIFEST_UNKNOWN", "/blobs/": "BLOB_UNKNOWN"}[kind]
			registryError(w, http.StatusNotFound, code, repo+": "+ref+" is not on this node")
			return
		}
		m.serveBlob(w, r, digest, kind == "/manifests/")
		return
	}
	registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a registry path")
}

// resolve is the digest of the manifest repo:ref names (ref a tag or a
// digest), or "" when the mirror does not serve it.
func (m *Mirror) resolve(ctx context.Context, ns, repo, ref string) string {
	if strings.Contains(ref, ":") {
		if m.served(ctx, ref) {
			return ref
		}
		return ""
	}
	imgs, err := m.images(ctx, true)
	if err != nil {
		return ""
	}
	var keys []string
	for k := range imgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t, err := name.NewTag(k, name.WeakValidation)
		if err != nil || t.RepositoryStr() != repo || t.TagStr() != ref {
			continue
		}
		if ns != "" && containerdHost(t.RegistryStr()) != ns {
			continue
		}
		return imgs[k]
	}
	return ""
}

// served reports whether digest belongs to an image the mirror serves: one
// of their manifests or indexes, or a blob they reference.
func (m *Mirror) served(ctx context.Context, digest string) bool {
	for _, fresh := range []bool{false, true} {
		imgs, err := m.images(ctx, fresh)
		if err != nil {
			return false
		}
		for _, root := range imgs {
			if m.reachable(root)[digest] {
				return true
			}
		}
	}
	return false
}

// listingTTL is how long a listing of the store answers blob requests.
const listingTTL = 10 * time.Second

// images lists the store: afresh, or the last listing while it is recent.
func (m *Mirror) images(ctx context.Context, fresh bool) (map[string]string, error) {
	m.mu.Lock()
	imgs, at := m.listed, m.listedAt
	m.mu.Unlock()
	if !fresh && imgs != nil && time.Since(at) < listingTTL {
		return imgs, nil
	}
	imgs, err := m.store.Images(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.listed, m.listedAt = imgs, time.Now()
	m.mu.Unlock()
	return imgs, nil
}

// reachable is the set of digests root references, itself included:
// through an index its manifests (those the store holds), through a
// manifest its config and layers.
func (m *Mirror) reachable(root string) map[string]bool {
	m.mu.Lock()
	set, ok := m.refs[root]
	m.mu.Unlock()
	if ok {
		return set
	}
	set = map[string]bool{}
	var walk func(d string, depth int)
	walk = func(d string, depth int) {
		if set[d] || depth > 3 {
			return
		}
		doc, err := m.readManifest(d)
		if err != nil {
			return
		}
		set[d] = true
		for _, c := range doc.Manifests {
			walk(c.Digest, depth+1)
		}
		if doc.Config.Digest != "" {
			set[doc.Config.Digest] = true
		}
		for _, l := range doc.Layers {
			set[l.Digest] = true
		}
	}
	walk(root, 0)
	if set[root] { // not cached when the root could not be read
		m.mu.Lock()
		m.refs[root] = set
		m.mu.Unlock()
	}
	return set
}

// manifestDoc is what the mirror reads of a manifest or an index.
type manifestDoc struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
}

// maxManifest bounds what the mirror reads as a manifest.
const maxManifest = 4 << 20

func (m *Mirror) readManifest(digest string) (*manifestDoc, error) {
	f, err := m.store.Open(digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var doc manifestDoc
	if err := json.NewDecoder(io.LimitReader(f, maxManifest)).Decode(&doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// serveBlob writes the blob digest (ranges, HEAD) with the registry's
// headers; a manifest with its own media type.
func (m *Mirror) serveBlob(w http.ResponseWriter, r *http.Request, digest string, manifest bool) {
	f, err := m.store.Open(digest)
	if err != nil {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", digest+" is not on this node")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	ct := "application/octet-stream"
	if manifest {
		doc, err := m.readManifest(digest)
		if err != nil {
			registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		ct = manifestType(doc)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Etag", `"`+digest+`"`)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// manifestType is a manifest's media type: its own field, or, for OCI
// documents that leave it out, what its shape says.
func manifestType(doc *manifestDoc) string {
	switch {
	case doc.MediaType != "":
		return doc.MediaType
	case len(doc.Manifests) > 0:
		return "application/vnd.oci.image.index.v1+json"
	default:
		return "application/vnd.oci.image.manifest.v1+json"
	}
}

// registryError writes the distribution API's error body.
func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
