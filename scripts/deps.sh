#!/usr/bin/env bash
# Installs what building, running and testing skiff need on a fresh Debian
# machine; idempotent: it installs only what is missing.
#   scripts/deps.sh run   packages a running cluster needs
#   scripts/deps.sh test  those plus what the tests need (etcd-server for the
#                         external-datastore tests)
set -euo pipefail
mode=${1:-run}

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "deps: Go is not installed (expected at /usr/local/go)" >&2
  exit 1
fi

pkgs=(ca-certificates iproute2 nftables containerd runc containernetworking-plugins busybox-static)
if [ "$mode" = test ]; then
  pkgs+=(etcd-server etcd-client)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package starts a system etcd on 2379; skiff's tests
# start their own members and need the ports free.
if [ "$mode" = test ] && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
  systemctl disable etcd >/dev/null 2>&1 || true
fi
if [ "$mode" = test ] && pgrep -x etcd >/dev/null && ! pgrep -af "etcd.*skiff" >/dev/null; then
  pkill -x etcd || true
fi
# Debian's containerd package starts the system containerd; skiff runs its
# own private instance and does not need it, so it is left as it is.
exit 0
