// Package dashboard serves skiff's web dashboard: the page and its scripts,
// compiled from web/dashboard at build time (`make dashboard`, part of
// `make build`) and embedded in the binary, at /dashboard/ on the API
// server's HTTPS port.
//
// The assets are public (they hold no cluster data) and are served before
// the API server's authentication. Everything the page shows it reads from
// the Kubernetes API on the same origin with the user's own bearer token:
// the API server authenticates and RBAC decides each request, exactly as for
// kubectl. The package does not proxy, store tokens or hold credentials of
// its own; `skiff dashboard` (cmd/skiff) mints the short-lived token a user
// logs in with.
package dashboard
