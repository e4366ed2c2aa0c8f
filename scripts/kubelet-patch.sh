#!/usr/bin/env bash
# Writes a Go workspace file (GOWORK=FILE go build ...) that builds skiff
# against k8s.io/kubernetes with three timing constants of the kubelet's
# volume manager changed, and nothing else.
#
# Usage: scripts/kubelet-patch.sh OUT.work
#
# Before a new pod's sandbox is created the kubelet waits for its volumes
# (every pod that mounts its service account token has one: nearly all).
# Upstream's volume manager finds the pod in a loop every 100 ms, attaches
# and then mounts in two passes of another loop every 100 ms, and the pod's
# sync checks every 300 ms, with its first check before the loops have seen
# the pod: on an idle node a pod with a token volume waited 300-400 ms, more
# than half of its whole start (docs/perf.md, "the kubelet's volume wait").
# Here the three are 50 ms each. What the loops do and what the wait waits
# for are unchanged; each pass is in-memory work over the node's pods.
#
# Go refuses build overlays of files in the module cache, so the module is
# copied (hard links, well under a second) to a directory of its own under
# the user's cache directory, the one file is replaced there, and the
# workspace file replaces the module with that directory. The path does not
# depend on the checkout, so every clone on a machine shares the compiled
# packages. If a line is not found exactly once (a new Kubernetes version
# changed it), this fails, so a version bump has to look at the patch again
# rather than silently lose it. A plain `go build ./cmd/skiff` builds a
# working skiff whose pods start slower.
set -euo pipefail

out=${1:?usage: $0 OUT.work}
root=$(cd "$(dirname "$0")/.." && pwd)
mod=k8s.io/kubernetes
rel=pkg/kubelet/volumemanager/volume_manager.go
# name, upstream's milliseconds, skiff's: each must be found exactly once.
consts=(
  "reconcilerLoopSleepPeriod 100 50"
  "desiredStateOfWorldPopulatorLoopSleepPeriod 100 50"
  "podAttachAndMountRetryInterval 300 50"
)

cd "$root"
json=$(go mod download -json "$mod")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
version=$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",$/\1/p' <<<"$json")
[ -d "$dir" ] && [ -n "$version" ] || { echo "$0: $mod not found in the module cache" >&2; exit 1; }

edits=()
for c in "${consts[@]}"; do
  read -r name old new <<<"$c"
  line="^\([[:space:]]*$name = \)$old \* time\.Millisecond\$"
  n=$(grep -c "$line" "$dir/$rel" || true)
  if [ "$n" != 1 ]; then
    echo "$0: expected one line '$name = $old * time.Millisecond' in $dir/$rel, found $n: update the patch for this Kubernetes version" >&2
    exit 1
  fi
  edits+=(-e "s/$line/\1$new * time.Millisecond/")
done

# The directory's name stays the same when the edits change, so only the
# packages the file changes are compiled again.
dest=${XDG_CACHE_HOME:-$HOME/.cache}/skiff/$(basename "$mod")@$version
if [ ! -e "$dest/.complete" ]; then
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$dest.tmp.XXXXXX")
  if ! cp -al "$dir/." "$tmp/" 2>/dev/null; then
    # Another file system: a copy (~130 MB) instead of hard links.
    chmod -R u+w "$tmp" && rm -rf "$tmp" && mkdir "$tmp"
    cp -a "$dir/." "$tmp/"
  fi
  chmod u+w "$tmp" "$tmp/$(dirname "$rel")"
  touch "$tmp/.complete"
  if [ -e "$dest" ]; then chmod -R u+w "$dest" && rm -rf "$dest"; fi
  mv "$tmp" "$dest"
fi
sed "${edits[@]}" "$dir/$rel" > "$dest/$rel.tmp"
if cmp -s "$dest/$rel.tmp" "$dest/$rel"; then rm "$dest/$rel.tmp"; else mv "$dest/$rel.tmp" "$dest/$rel"; fi

goversion=$(sed -n 's/^go //p' go.mod)
mkdir -p "$(dirname "$out")"
cat > "$out.tmp" <<EOF
// Written by scripts/kubelet-patch.sh: skiff's module with $mod
// $version patched in three constants (see the script).
go $goversion

use $root

replace $mod $version => $dest
EOF
mv "$out.tmp" "$out"
