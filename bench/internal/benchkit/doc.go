// Package benchkit is what skiff's benchmark programs under bench/ share:
// starting `skiff server` as a subprocess on a free port and a data
// directory of the caller's choosing, timing it to /readyz, reading the
// resident memory of it and its children from /proc, building client-go
// configs without client-side rate limits, and summarising latencies as
// percentiles.
//
// It owns no measurement policy: which figures to take, how many times and
// against which targets is each benchmark's business. It is not imported by
// skiff itself, only by programs under bench/.
package benchkit
