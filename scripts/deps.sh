#!/usr/bin/env bash
# Installs what building, running and testing skiff need on a fresh Debian
# machine; idempotent: it installs only what is missing.
#   scripts/deps.sh run   packages a running cluster needs
#   scripts/deps.sh test  those plus what the tests need (etcd-server for the
#                         external-datastore tests)
#   scripts/deps.sh bench-ingress  only the peers and load generators of
#                         bench/ingress (haproxy, nginx, caddy, wrk, h2load)
#   scripts/deps.sh conformance  those of run, and the Debian programs the
#                         conformance suite's stand-in images carry (make
#                         conformance): dig, nc, socat; and the C
#                         toolchain that builds its busybox from source
set -euo pipefail
mode=${1:-run}

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "deps: Go is not installed (expected at /usr/local/go)" >&2
  exit 1
fi

pkgs=(ca-certificates iproute2 nftables runc containernetworking-plugins busybox-static)
# The dashboard's build (make dashboard) runs Vite on Node.js: Debian's
# nodejs and npm, unless a Node.js is already installed (from NodeSource,
# say, whose nodejs package brings npm).
if ! command -v npm >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi
if [ "$mode" = test ]; then
  # chromium: the dashboard's browser tests (test/e2e/dashboard).
  pkgs+=(etcd-server etcd-client chromium)
fi
if [ "$mode" = bench-ingress ]; then
  pkgs=(haproxy nginx caddy wrk nghttp2-client)
fi
if [ "$mode" = conformance ]; then
  pkgs+=(curl bind9-dnsutils netcat-openbsd socat bash iproute2 libc-bin gcc make bzip2 libc6-dev)
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
# Debian's haproxy, nginx and caddy packages start system services on 80/443
# (where systemd or an init script is allowed to); bench/ingress starts its
# own on free ports, and skiff's ingress wants 80/443. Only services this run
# installed are stopped and disabled: one the machine already ran is left.
if [ "$mode" = bench-ingress ]; then
  for s in haproxy nginx caddy; do
    [[ " ${missing[*]} " == *" $s "* ]] || continue
    if systemctl is-active --quiet "$s" 2>/dev/null; then
      systemctl stop "$s" || true
      systemctl disable "$s" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$s" ] && "/etc/init.d/$s" status >/dev/null 2>&1; then
      "/etc/init.d/$s" stop || true
      update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
  done
fi
# Debian's containerd package starts the system containerd; skiff runs its
# own private instance and does not need it, so it is left as it is.
exit 0
