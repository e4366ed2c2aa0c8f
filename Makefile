# skiff: `make run` builds and starts a one-node cluster; `make test` runs every test.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
DATA_DIR ?= /var/lib/skiff
TEST_TIMEOUT ?= 60m
# skiff embeds Kubernetes v1.37.2; it reports that version, as k3s does (v1.37.2+k3s1).
K8S_VERSION := v1.37.2
SKIFF_VERSION ?= $(K8S_VERSION)+skiff$(shell git rev-parse --short HEAD 2>/dev/null | sed 's/^/./')
VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
# skiff builds against k8s.io/kubernetes with a few waits shortened (three of
# the kubelet's volume manager, two of the API server's post-start hooks;
# scripts/kubernetes-patch.sh says which and why), through a workspace file.
GOWORK_PATCHED := $(CURDIR)/bin/go.work
LDFLAGS := -s -w $(foreach p,$(VERSION_PKGS),-X $(p).gitVersion=$(SKIFF_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=37 -X $(p).gitTreeState=clean -X $(p).gitCommit=$(shell git rev-parse HEAD 2>/dev/null) -X $(p).buildDate=$(shell git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null))

.PHONY: generate run build dashboard images deps test-deps test unit e2e bench bench-ingress bench-ingress-deps conformance conformance-build clean

run: deps build
	./bin/skiff server --data-dir $(DATA_DIR)

# The pause and busybox images are built into the binary (internal/images/builtin).
# containerd, its runc shim and ctr are built beside it (bin/containerd).
# The kubelet's volume manager runs its loops every 50 ms (upstream: 100 and
# 300); the script fails if a Kubernetes version moves a line. It runs on
# every build (well under a second); the tests build with it too.
build: images dashboard bin/containerd
	cp images/out/pause.tar images/out/busybox.tar internal/images/builtin/files/
	./scripts/kubernetes-patch.sh $(GOWORK_PATCHED)
	GOWORK=$(GOWORK_PATCHED) $(GO) build -ldflags "$(LDFLAGS)" -o bin/skiff ./cmd/skiff

# The web dashboard (web/dashboard: Preact, built by Vite from the npm
# registry's pinned packages) into internal/dashboard/dist/app, which the
# binary embeds. npm ci runs again only when the lock file changed.
dashboard:
	cd web/dashboard && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build -- --logLevel warn

# skiff's own container images (pause, testhost, busybox) as OCI tarballs in
# images/out, tagged latest and the skiff version ("+" is not allowed in tags).
images:
	$(GO) run ./images/build -out images/out -version $(subst +,-,$(SKIFF_VERSION))

deps:
	./scripts/deps.sh run

test-deps:
	./scripts/deps.sh test

# The Kubernetes conformance suite (k8s.io/kubernetes's e2e.test, built in
# conformance/, a module of its own) against a fresh one-node cluster; not
# part of make test: it takes hours here. scripts/conformance.sh says how
# to narrow it (CONFORMANCE_FOCUS) and where the report goes.
conformance: build
	./scripts/deps.sh conformance
	./scripts/conformance.sh run

conformance-build:
	./scripts/deps.sh conformance
	./scripts/conformance.sh build

# Every test: unit, in-process integration and end-to-end (the e2e tests
# drive bin/skiff and the standalone kubectl versions found on the machine).
test: test-deps build bin/coredns bin/kwok
	$(GO) vet ./...
	SKIFF_BIN=$(CURDIR)/bin/skiff COREDNS_BIN=$(CURDIR)/bin/coredns KWOK_BIN=$(CURDIR)/bin/kwok GOWORK=$(GOWORK_PATCHED) $(GO) test -ldflags "$(LDFLAGS)" -p 1 -timeout $(TEST_TIMEOUT) -count=1 ./...
	# The pod network again, over the VXLAN backend.
	POD_NETWORK=vxlan SKIFF_BIN=$(CURDIR)/bin/skiff COREDNS_BIN=$(CURDIR)/bin/coredns GOWORK=$(GOWORK_PATCHED) $(GO) test -ldflags "$(LDFLAGS)" -timeout 20m -count=1 \
		-run 'TestPodToPodAcrossNodes|TestClusterIPSpreadsAndDropsUnready|TestClusterDNS' ./test/e2e/network

# The node's container runtime: containerd 2.x, its runc shim and ctr, built
# from containerd's Go module into bin/, where the agent looks first (then
# $PATH). Without btrfs, devmapper and zfs snapshotters (the node uses
# overlayfs; btrfs needs C headers). The shim (one process per pod) is built
# as containerd's own Makefile builds it: static, without cgo and without
# gRPC (SHIM_CGO_ENABLED=0, the no_grpc tag), which takes 0.4 MiB of
# anonymous memory off each pod's shim (docs/perf.md). The stamp file rebuilds them when the version or the recipe
# (CONTAINERD_BUILD) changes.
CONTAINERD_VERSION = v2.4.2
CONTAINERD_BUILD = 2
CONTAINERD_PKG = github.com/containerd/containerd/v2
CONTAINERD_LDFLAGS = -s -w -X $(CONTAINERD_PKG)/version.Version=$(CONTAINERD_VERSION)
CONTAINERD_STAMP = bin/.containerd-$(CONTAINERD_VERSION)-$(CONTAINERD_BUILD)
bin/containerd: $(CONTAINERD_STAMP)
$(CONTAINERD_STAMP):
	cd /tmp && GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install -trimpath -tags "urfave_cli_no_docs no_btrfs no_devmapper no_zfs" \
		-ldflags "$(CONTAINERD_LDFLAGS)" \
		$(CONTAINERD_PKG)/cmd/containerd@$(CONTAINERD_VERSION) \
		$(CONTAINERD_PKG)/cmd/ctr@$(CONTAINERD_VERSION)
	cd /tmp && CGO_ENABLED=0 GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install -trimpath -tags "urfave_cli_no_docs no_grpc" \
		-ldflags "$(CONTAINERD_LDFLAGS)" \
		$(CONTAINERD_PKG)/cmd/containerd-shim-runc-v2@$(CONTAINERD_VERSION)
	rm -f bin/.containerd-* && touch $@

# CoreDNS, the reference the cluster DNS's answers are compared with
# (test/e2e/network), built from the Go module proxy.
COREDNS_VERSION = v1.12.1
bin/coredns:
	cd /tmp && GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install github.com/coredns/coredns@$(COREDNS_VERSION)

# kwok, the fake nodes and pods test/e2e/apiserver runs against a server
# unmodified, built from the Go module proxy, and its "fast" stages (node
# ready with a lease heartbeat, pods ready, completed and deleted) as its
# module ships them, in the file its --config reads.
KWOK_VERSION = v0.8.0
bin/kwok:
	cd /tmp && GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	dir=$$(cd /tmp && $(GO) mod download -json sigs.k8s.io/kwok@$(KWOK_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do \
		echo "---"; cat "$$dir/kustomize/stage/$$f"; \
	done > bin/kwok-stages.yaml

# skiff's ingress proxy against HAProxy, NGINX and Caddy under wrk and h2load
# (bench/ingress), installing them first when missing. BENCH_ARGS are its
# flags, e.g. BENCH_ARGS='-duration 5s -scenarios h1-keepalive,h2-tls'.
BENCH_ARGS ?=
bench-ingress: bench-ingress-deps
	$(GO) run ./bench/ingress $(BENCH_ARGS)

bench-ingress-deps:
	./scripts/deps.sh bench-ingress

clean:
	rm -rf bin conformance/out

# The fleet API's and the mesh API's CRDs and deep copies, from the types in
# internal/fleet/api/v1alpha1 and internal/mesh/api/v1alpha1. The mesh's CRDs
# go beside internal/mesh/api, which embeds them (go:embed cannot reach up).
CONTROLLER_TOOLS_VERSION = v0.23.0
generate:
	cd /tmp && GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	bin/controller-gen object crd:crdVersions=v1 paths=./internal/fleet/api/... output:crd:dir=internal/fleet/crds
	bin/controller-gen object crd:crdVersions=v1 paths=./internal/mesh/api/... output:crd:dir=internal/mesh/api/crds
