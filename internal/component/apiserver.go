package component

import (
	"context"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/server/mux"
	encryptionconfigcontroller "k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// ShutdownTimeout bounds how long kube-apiserver's HTTP server waits for
// open connections when it stops.
const ShutdownTimeout = 2 * time.Second

// encryptionConfigPoll is how often kube-apiserver rereads an encryption
// configuration it reloads automatically (upstream: every minute), so that
// a key rotation takes seconds.
const encryptionConfigPoll = 5 * time.Second

// APIServerHandlers are handlers skiff adds to kube-apiserver's port, by
// path prefix.
type APIServerHandlers struct {
	// Public are served ahead of the handler chain: without
	// authentication, authorization or audit, for content that holds no
	// cluster data (the dashboard's page and scripts).
	Public map[string]http.Handler
	// Authenticated are served inside the chain, as the API server's own
	// non-resource paths are (authenticated, authorized by path, audited),
	// and win over a Public prefix that also matches: a path ending in "/"
	// with everything under it, any other alone.
	Authenticated map[string]http.Handler
	// Mux, when set, is given the mux the Authenticated handlers are on,
	// for handlers that come and go while the server runs.
	Mux func(*mux.PathRecorderMux)
}

// APIServer runs kube-apiserver with the given flags until ctx ends, with
// skiff's handlers added.
func APIServer(ctx context.Context, args []string, handlers APIServerHandlers) error {
	encryptionconfigcontroller.EncryptionConfigFileChangePollDuration = encryptionConfigPoll
	s := options.NewServerRunOptions()
	if err := parse("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	// Upstream registers the informer name once per process; a restarted
	// run (internal/supervise) must release it first.
	name, err := cache.NewInformerName("kube-apiserver")
	if err != nil {
		return err
	}
	defer name.Release()
	s.InformerName = name
	completed, err := s.Complete(ctx)
	if err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	if err := invalid("kube-apiserver", completed.Validate()); err != nil {
		return err
	}
	// app.Run's steps, so that a failure to set the server up (a bad
	// advertise address, say) ends skiff with a configuration error:
	// upstream's process would exit there, and a run restarted in this one
	// would find its own listener from the failed run still bound.
	config, err := app.NewConfig(completed)
	if err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	completedConfig, err := config.Complete()
	if err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	server, err := app.CreateServerChain(completedConfig)
	if err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	// On shutdown, upstream lets open connections finish for up to its
	// request timeout (60 s) before closing them. In skiff the clients on
	// those connections are the same process's kubelet and kube-proxy,
	// stopping too: a short grace is enough, and SIGTERM returns promptly.
	server.GenericAPIServer.ShutdownTimeout = ShutdownTimeout
	h := server.GenericAPIServer.Handler
	for path, handler := range handlers.Authenticated {
		if strings.HasSuffix(path, "/") {
			h.NonGoRestfulMux.HandlePrefix(path, handler)
		} else {
			h.NonGoRestfulMux.Handle(path, handler)
		}
	}
	if handlers.Mux != nil {
		handlers.Mux(h.NonGoRestfulMux)
	}
	if len(handlers.Public) > 0 {
		h.FullHandlerChain = publicFirst(handlers, h.FullHandlerChain)
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return invalid("kube-apiserver", []error{err})
	}
	return prepared.Run(ctx)
}

// publicFirst serves the paths under Public's prefixes (a prefix ending in
// "/" also takes the path without it) with their handlers, and the rest,
// Authenticated's prefixes among them, with chain.
func publicFirst(handlers APIServerHandlers, chain http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for prefix := range handlers.Authenticated {
			if strings.HasPrefix(r.URL.Path, prefix) {
				chain.ServeHTTP(w, r)
				return
			}
		}
		for prefix, h := range handlers.Public {
			if strings.HasPrefix(r.URL.Path, prefix) || r.URL.Path == strings.TrimSuffix(prefix, "/") {
				h.ServeHTTP(w, r)
				return
			}
		}
		chain.ServeHTTP(w, r)
	})
}
