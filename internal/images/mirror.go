package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Mirror is a loopback, in-memory OCI registry (go-containerregistry's
// pkg/registry) holding the images of some archives, for containerd to use
// as the registry mirror of the host "localhost" and of every registry
// host the archives' references name (Registries), so that a pull of an
// imported image (imagePullPolicy Always) needs no network:
//
//	[plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost"]
//	  endpoint = ["http://127.0.0.1:PORT"]
//
// An image localhost/skiff/testhost:latest is served as repository
// skiff/testhost, tag latest, at that endpoint; registry.k8s.io/pause:3.10
// as repository pause. (Repositories of two registries with the same path
// share one.)
//
// NewMirror binds the address and loads the images; Run serves them until
// its context ends. Close releases the address when Run is never called.
type Mirror struct {
	l          net.Listener
	handler    http.Handler
	registries []string
}

// NewMirror listens on addr (for example "127.0.0.1:0") and pushes every
// image reference found in the archives (as written by Build) into a fresh
// in-memory registry. The push happens in-process, before anything is
// served. Repositories are the references without their "localhost/"
// registry part.
func NewMirror(ctx context.Context, addr string, archives []string) (*Mirror, error) {
	handler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	registries := map[string]bool{}
	for _, path := range archives {
		imgs, err := readArchive(path)
		if err != nil {
			return nil, fmt.Errorf("images: mirror: %w", err)
		}
		for _, ti := range imgs {
			// Only the repository and tag matter to the handler; the
			// registry host is replaced by the in-process transport.
			ref, err := name.NewTag(ti.ref.RepositoryStr()+":"+ti.ref.TagStr(), name.WithDefaultRegistry("mirror.invalid"), name.Insecure)
			if err != nil {
				return nil, err
			}
			if err := remote.Write(ref, ti.img, remote.WithContext(ctx), remote.WithTransport(handlerTransport{handler})); err != nil {
				return nil, fmt.Errorf("images: mirror: push %s: %w", ti.ref, err)
			}
			registries[containerdHost(ti.ref.RegistryStr())] = true
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("images: mirror: %w", err)
	}
	m := &Mirror{l: l, handler: handler}
	for r := range registries {
		m.registries = append(m.registries, r)
	}
	slices.Sort(m.registries)
	return m, nil
}

// Registries are the registry hosts the mirror holds images of, as
// containerd names them in its mirror configuration ("localhost",
// "registry.k8s.io", "docker.io"), sorted.
func (m *Mirror) Registries() []string { return m.registries }

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
	srv := &http.Server{Handler: m.handler, ReadHeaderTimeout: 10 * time.Second}
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

// handlerTransport sends requests straight to an http.Handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	// The handler sees what a server would: a request URI and no scheme.
	sreq := req.Clone(req.Context())
	sreq.RequestURI = req.URL.RequestURI()
	if req.Body != nil {
		defer req.Body.Close()
	} else {
		sreq.Body = http.NoBody
	}
	if !strings.HasPrefix(sreq.URL.Path, "/") {
		return nil, fmt.Errorf("bad request path %q", sreq.URL.Path)
	}
	t.h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
