#!/usr/bin/env bash
# Writes a Go workspace file (GOWORK=FILE go build ...) that builds skiff
# against k8s.io/kubernetes with a few waits shortened, and nothing else.
#
# Usage: scripts/kubernetes-patch.sh OUT.work
#
# The kubelet's volume manager (pkg/kubelet/volumemanager): before a new
# pod's sandbox is created the kubelet waits for its volumes (every pod
# that mounts its service account token has one: nearly all). Upstream's
# volume manager finds the pod in a loop every 100 ms, attaches and then
# mounts in two passes of another loop every 100 ms, and the pod's sync
# checks every 300 ms, with its first check before the loops have seen the
# pod: on an idle node a pod with a token volume waited 300-400 ms, more
# than half of its whole start (docs/perf.md, "the kubelet's volume wait").
# Here the three are 50 ms each. What the loops do and what the wait waits
# for are unchanged; each pass is in-memory work over the node's pods.
#
# The API server's post-start hooks that write the bootstrap RBAC policy
# and the system PriorityClasses (pkg/registry/rbac/rest,
# pkg/registry/scheduling/rest): each retries its work every second for
# 30 s, but with wait.Poll, whose first try is one second after the hook
# starts; /readyz fails until both are done, so every start of the API
# server, fresh or not, waited a second doing nothing (docs/perf.md, "the
# API server's first second"). Here the first try is at once
# (wait.PollImmediate); the retries, their interval and the timeout are
# upstream's. Both hooks run after the server is serving, and what they do
# is idempotent: a first try that fails is retried as before.
#
# Go refuses build overlays of files in the module cache, so the module is
# copied (hard links, well under a second) to a directory of its own under
# the user's cache directory, the changed files are replaced there, and the
# workspace file replaces the module with that directory. The path does not
# depend on the checkout, so every clone on a machine shares the compiled
# packages. If a line is not found exactly once (a new Kubernetes version
# changed it), this fails, so a version bump has to look at the patch again
# rather than silently lose it. A plain `go build ./cmd/skiff` builds a
# working skiff that starts, and starts pods, slower.
set -euo pipefail

out=${1:?usage: $0 OUT.work}
root=$(cd "$(dirname "$0")/.." && pwd)
mod=k8s.io/kubernetes
# Each edit: a file of the module | a sed pattern that must match exactly one
# whole line of it | its replacement.
pollfn='\([[:space:]]*err := wait\.\)Poll\((1\*time\.Second, 30\*time\.Second, func() (done bool, err error) {\)'
edits=(
  'pkg/kubelet/volumemanager/volume_manager.go|^\([[:space:]]*reconcilerLoopSleepPeriod = \)100 \* time\.Millisecond$|\150 * time.Millisecond'
  'pkg/kubelet/volumemanager/volume_manager.go|^\([[:space:]]*desiredStateOfWorldPopulatorLoopSleepPeriod = \)100 \* time\.Millisecond$|\150 * time.Millisecond'
  'pkg/kubelet/volumemanager/volume_manager.go|^\([[:space:]]*podAttachAndMountRetryInterval = \)300 \* time\.Millisecond$|\150 * time.Millisecond'
  "pkg/registry/rbac/rest/storage_rbac.go|^$pollfn\$|\1PollImmediate\2"
  "pkg/registry/scheduling/rest/storage_scheduling.go|^$pollfn\$|\1PollImmediate\2"
)

cd "$root"
json=$(go mod download -json "$mod")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
version=$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",$/\1/p' <<<"$json")
[ -d "$dir" ] && [ -n "$version" ] || { echo "$0: $mod not found in the module cache" >&2; exit 1; }

declare -A script
files=()
for e in "${edits[@]}"; do
  IFS='|' read -r rel line repl <<<"$e"
  n=$(grep -c "$line" "$dir/$rel" || true)
  if [ "$n" != 1 ]; then
    echo "$0: expected one line matching '$line' in $dir/$rel, found $n: update the patch for this Kubernetes version" >&2
    exit 1
  fi
  [ -n "${script[$rel]:-}" ] || files+=("$rel")
  script[$rel]+="s/$line/$repl/;"
done

# The directory's name stays the same when the edits change, so only the
# packages of the changed files are compiled again.
dest=${XDG_CACHE_HOME:-$HOME/.cache}/skiff/$(basename "$mod")@$version
if [ ! -e "$dest/.complete" ]; then
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$dest.tmp.XXXXXX")
  if ! cp -al "$dir/." "$tmp/" 2>/dev/null; then
    # Another file system: a copy (~130 MB) instead of hard links.
    chmod -R u+w "$tmp" && rm -rf "$tmp" && mkdir "$tmp"
    cp -a "$dir/." "$tmp/"
  fi
  touch "$tmp/.complete"
  if [ -e "$dest" ]; then chmod -R u+w "$dest" && rm -rf "$dest"; fi
  mv "$tmp" "$dest"
fi
# Each changed file is written anew, only when it differs: the copy's hard
# link to the module cache is replaced, never written through.
for rel in "${files[@]}"; do
  chmod u+w "$dest/$(dirname "$rel")"
  sed "${script[$rel]}" "$dir/$rel" > "$dest/$rel.tmp"
  if cmp -s "$dest/$rel.tmp" "$dest/$rel"; then rm "$dest/$rel.tmp"; else mv "$dest/$rel.tmp" "$dest/$rel"; fi
done

goversion=$(sed -n 's/^go //p' go.mod)
mkdir -p "$(dirname "$out")"
cat > "$out.tmp" <<EOF
// Written by scripts/kubernetes-patch.sh: skiff's module with $mod
// $version, a few waits shortened (see the script).
go $goversion

use $root

replace $mod $version => $dest
EOF
mv "$out.tmp" "$out"
