#!/usr/bin/env bash
# The Kubernetes conformance suite against a fresh skiff cluster (make
# conformance; not part of make test: it takes hours on two cores).
#
#   scripts/conformance.sh build   the suite (conformance/out/e2e.test, ginkgo),
#                                  the binaries of its images (busybox built
#                                  from source with the host's C compiler) and
#                                  the images
#                                  (conformance/out/images)
#   scripts/conformance.sh run     build, start a fresh one-node cluster, run
#                                  every [Conformance] spec (ginkgo runs the
#                                  [Serial] ones after the parallel ones), write
#                                  the report
#
# Environment:
#   CONFORMANCE_DIR    work directory: the cluster's data dir, logs, the JUnit
#                      file and report.md (default /tmp/skiff-conformance)
#   CONFORMANCE_FOCUS  a regular expression the specs must also match
#                      (default: every [Conformance] spec)
#   CONFORMANCE_SKIP   specs to leave out (default: [Disruptive]; set and empty:
#                      none)
#   CONFORMANCE_NODES  1 (default): `skiff server` with its own node; 3: a
#                      server and three nodes in network namespaces
#                      (scripts/netns-cluster.sh; needs its lock free:
#                      no network e2e test or benchmark beside it)
#   GINKGO_PROCS       parallel ginkgo processes (default 10: most specs wait on
#                      timers, not the CPU)
#   CONFORMANCE_TIMEOUT  the whole run's limit (default 24h); when it is
#                      reached ginkgo stops and the report covers what ran
#   SKIFF_BIN          the skiff binary (default bin/skiff; make conformance builds it)
#   CONFORMANCE_BUILD  0: run what conformance/out holds, without building it again
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/conformance/out
export PATH=$PATH:/usr/local/go/bin
cd "$root"

# busybox as upstream's busybox image has it (busybox 1.37.0 from its own
# source, the default configuration, static): Debian's busybox-static
# reverts upstream's ash change that keeps environment variables whose
# names are not identifiers (data-1), and runs its applets before the
# PATH's programs. The source is upstream's release tarball as Debian's
# archive holds it (busybox_VERSION.orig.tar.bz2), checked against its
# SHA-256.
busybox_version=1.37.0
busybox_sha256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4

build_busybox() {
  local stamp=$out/bin/.busybox-$busybox_version-notc
  [ -x "$out/bin/busybox" ] && [ -e "$stamp" ] && return 0
  echo "conformance: building busybox $busybox_version from source"
  local src tarball=busybox_$busybox_version.orig.tar.bz2
  src=$(mktemp -d)
  curl -fsSL --retry 3 -o "$src/$tarball" "http://deb.debian.org/debian/pool/main/b/busybox/$tarball"
  echo "$busybox_sha256  $src/$tarball" | sha256sum -c --quiet -
  tar -C "$src" -xjf "$src/$tarball"
  (
    cd "$src/busybox-$busybox_version"
    make -s defconfig >/dev/null
    sed -i 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' .config
    grep -qx CONFIG_STATIC=y .config
    # Without tc, which no spec runs and which does not compile against
    # the kernel headers of Linux 6.8 and later (CBQ was removed there).
    sed -i 's/^CONFIG_TC=y$/# CONFIG_TC is not set/' .config
    make -s -j"$(nproc)" busybox >"$src/build.log" 2>&1 || { tail -30 "$src/build.log" >&2; exit 1; }
  )
  install -m 0755 "$src/busybox-$busybox_version/busybox" "$out/bin/busybox"
  rm -f "$out"/bin/.busybox-*
  touch "$stamp"
  rm -rf "$src"
}

build() {
  mkdir -p "$out/bin"
  build_busybox
  (
    cd conformance
    echo "conformance: building agnhost, nnp, sample-apiserver, etcd and ginkgo"
    for t in agnhost:k8s.io/kubernetes/test/images/agnhost nnp:k8s.io/kubernetes/test/images/nonewprivs \
      sample-apiserver:k8s.io/sample-apiserver etcd:./cmd/etcd ginkgo:github.com/onsi/ginkgo/v2/ginkgo; do
      CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/bin/${t%%:*}" "${t#*:}"
    done
    v=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    echo "conformance: building e2e.test (k8s.io/kubernetes $v)"
    # The suite's own version (the pod security fixtures are chosen by it).
    major=${v#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
    vpkg=k8s.io/component-base/version
    go test -c -trimpath -o "$out/e2e.test" \
      -ldflags "-X $vpkg.gitVersion=$v -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" ./e2e
    go build -o "$out/bin/report" ./cmd/report
  )
  k8s_dir=$(cd conformance && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  go run ./images/conformance -bin "$out/bin" -k8s-dir "$k8s_dir" -out "$out/images"
}

run() {
  [ "${CONFORMANCE_BUILD:-1}" = 0 ] || build
  skiff=${SKIFF_BIN:-$root/bin/skiff}
  work=${CONFORMANCE_DIR:-/tmp/skiff-conformance}
  if [ -e "$work" ]; then
    echo "conformance: $work exists; remove it (a fresh cluster each run)" >&2
    exit 1
  fi
  mkdir -p "$work/results"
  if [ "${CONFORMANCE_NODES:-1}" = 1 ]; then
    "$skiff" server --data-dir "$work/data" --images-dir "$out/images" >"$work/server.log" 2>&1 &
    server=$!
    # On the way out: the server stopped, then what its node left running
    # (containerd, the suite's pods, mounts).
    trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; "$skiff" agent teardown --data-dir "$work/data/agent" >/dev/null 2>&1 || true' EXIT
    kubeconfig=$work/data/kubeconfig.yaml
    for _ in $(seq 300); do
      grep -q "skiff server is ready" "$work/server.log" && break
      kill -0 "$server" 2>/dev/null || { echo "conformance: skiff server exited; see $work/server.log" >&2; exit 1; }
      sleep 1
    done
  else
    trap 'scripts/netns-cluster.sh down "$work/cluster" >/dev/null 2>&1 || true' EXIT
    SKIFF_BIN=$skiff AGENT_ARGS="--images-dir $out/images" \
      scripts/netns-cluster.sh up "$work/cluster" "$CONFORMANCE_NODES" >"$work/cluster.log" 2>&1
    kubeconfig=$work/cluster/server/kubeconfig.yaml
  fi
  kubectl=("$skiff" kubectl --kubeconfig "$kubeconfig")
  for i in $(seq 300); do
    [ "$("${kubectl[@]}" get nodes --no-headers 2>/dev/null | grep -c " Ready ")" -ge "${CONFORMANCE_NODES:-1}" ] && break
    [ "$i" = 300 ] && { echo "conformance: the nodes are not Ready after 300 s" >&2; exit 1; }
    sleep 1
  done
  "${kubectl[@]}" get nodes -o wide
  # (The node imports the suite's images before its kubelet starts.)

  focus='\[Conformance\]'
  skip=${CONFORMANCE_SKIP-'\[Disruptive\]'} # set and empty: skip nothing
  skip_args=()
  [ -z "$skip" ] || skip_args=(--skip="$skip")
  args=(--timeout="${CONFORMANCE_TIMEOUT:-24h}" --no-color --poll-progress-after=10m)
  suite=(-- --kubeconfig="$kubeconfig" --provider=skeleton --report-dir="$work/results" --disable-log-dump
    --e2e-output-dir="$work/results" -v=2)
  focus_args=(--focus="$focus")
  if [ -n "${CONFORMANCE_FOCUS:-}" ]; then
    focus_args=(--focus="$focus.*(?:${CONFORMANCE_FOCUS})|(?:${CONFORMANCE_FOCUS}).*$focus")
  fi
  # One run: ginkgo runs the [Serial] specs one at a time after the
  # parallel ones.
  status=0
  echo "conformance: ${GINKGO_PROCS:-10} processes"
  "$out/bin/ginkgo" "${args[@]}" --procs="${GINKGO_PROCS:-10}" "${focus_args[@]}" "${skip_args[@]}" \
    --junit-report="$work/results/junit.xml" "$out/e2e.test" "${suite[@]}" 2>&1 | tee "$work/e2e.log" || status=1
  "$out/bin/report" -o "$work/report.md" "$work/results/junit.xml"
  cat "$work/report.md"
  echo "conformance: report at $work/report.md, logs in $work"
  exit $status
}

case $mode in
  build) build ;;
  run) run ;;
  *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
