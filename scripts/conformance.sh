#!/usr/bin/env bash
# The Kubernetes conformance suite against a fresh skiff cluster (make
# conformance; not part of make test: it takes hours on two cores).
#
#   scripts/conformance.sh build   the suite (conformance/out/e2e.test, ginkgo),
#                                  the binaries of its images and the images
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
#   CONFORMANCE_SKIP   specs to leave out (default: [Disruptive])
#   CONFORMANCE_NODES  1 (default): `skiff server` with its own node; 3: a
#                      server and three nodes in network namespaces
#                      (scripts/netns-cluster.sh; needs its lock free:
#                      no network e2e test or benchmark beside it)
#   GINKGO_PROCS       parallel ginkgo processes for the parallel part (default 4)
#   SKIFF_BIN          the skiff binary (default bin/skiff; make conformance builds it)
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/conformance/out
export PATH=$PATH:/usr/local/go/bin
cd "$root"

build() {
  mkdir -p "$out/bin"
  (
    cd conformance
    echo "conformance: building agnhost, nnp, sample-apiserver, etcd and ginkgo"
    for t in agnhost:k8s.io/kubernetes/test/images/agnhost nnp:k8s.io/kubernetes/test/images/nonewprivs \
      sample-apiserver:k8s.io/sample-apiserver etcd:./cmd/etcd ginkgo:github.com/onsi/ginkgo/v2/ginkgo; do
      CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/bin/${t%%:*}" "${t#*:}"
    done
    echo "conformance: building e2e.test (k8s.io/kubernetes $(go list -m -f '{{.Version}}' k8s.io/kubernetes))"
    go test -c -trimpath -o "$out/e2e.test" ./e2e
    go build -o "$out/bin/report" ./cmd/report
  )
  k8s_dir=$(cd conformance && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  go run ./images/conformance -bin "$out/bin" -k8s-dir "$k8s_dir" -out "$out/images"
}

run() {
  build
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
    trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
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
  "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=300s
  # (The node imports the suite's images before its kubelet starts.)

  focus='\[Conformance\]'
  skip=${CONFORMANCE_SKIP:-'\[Disruptive\]'}
  args=(--timeout=24h --no-color --poll-progress-after=10m)
  suite=(-- --kubeconfig="$kubeconfig" --provider=skeleton --report-dir="$work/results" --disable-log-dump
    --e2e-output-dir="$work/results" -v=2)
  focus_args=(--focus="$focus")
  if [ -n "${CONFORMANCE_FOCUS:-}" ]; then
    focus_args=(--focus="$focus.*${CONFORMANCE_FOCUS}|${CONFORMANCE_FOCUS}.*$focus")
  fi
  # One run: ginkgo runs the [Serial] specs one at a time after the
  # parallel ones.
  status=0
  echo "conformance: ${GINKGO_PROCS:-4} processes"
  "$out/bin/ginkgo" "${args[@]}" --procs="${GINKGO_PROCS:-4}" "${focus_args[@]}" --skip="$skip" \
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
