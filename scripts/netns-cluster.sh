#!/usr/bin/env bash
# A multi-node skiff cluster on one machine: each node is a network namespace
# joined to the others by veth pairs on a bridge, with its own agent,
# containerd, kubelet, kube-proxy and pod CIDR; the server runs in the host's
# namespace. Pod-to-pod traffic between nodes really crosses "hosts".
#
#   scripts/netns-cluster.sh up   DIR [NODES] [PORT]   start (default 3 nodes, port 16443)
#   scripts/netns-cluster.sh down DIR                  stop everything and remove the namespaces
#
# POD_NETWORK=vxlan in the environment makes the nodes use the VXLAN overlay
# instead of direct routes (host-gw). SERVER_ARGS adds flags to `skiff
# server` (split on spaces), e.g. SERVER_ARGS="--dns-upstream 127.0.0.1:5353".
#
# After `up`: KUBECONFIG=DIR/server/kubeconfig.yaml; nodes skiff-n1… at
# 172.31.250.11…; the server at 172.31.250.1. Needs root, iproute2, nsenter.
#
# The bridge lives in its own namespace (skiff-lan), not the host's: bridged
# traffic there passes through that namespace's (empty) netfilter hooks
# instead of the host's, whose rules (another skiff, Docker, a firewall)
# would see foreign pod addresses.
set -euo pipefail

cmd=${1:?usage: netns-cluster.sh up|down DIR [NODES] [PORT]}
dir=${2:?usage: netns-cluster.sh up|down DIR [NODES] [PORT]}
nodes=${3:-3}
port=${4:-16443}
skiff=${SKIFF_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin/skiff}
bridge=skbr0
subnet=172.31.250
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

node_ip() { echo "$subnet.$((10 + $1))"; }

up() {
  ip netns add skiff-lan 2>/dev/null || true
  lan="ip -n skiff-lan"
  $lan link show "$bridge" >/dev/null 2>&1 || $lan link add "$bridge" type bridge
  $lan link set "$bridge" up
  # The host's leg: 172.31.250.1, where the server listens.
  if ! ip link show skv0 >/dev/null 2>&1; then
    ip link add skv0 type veth peer name skv0 netns skiff-lan
  fi
  ip addr replace "$subnet.1/24" dev skv0
  ip link set skv0 up
  $lan link set skv0 master "$bridge" up
  for i in $(seq 1 "$nodes"); do
    ns=skiff-n$i
    ip netns add "$ns" 2>/dev/null || true
    if ! $lan link show "skv$i" >/dev/null 2>&1; then
      ip -n "$ns" link add eth0 type veth peer name "skv$i" netns skiff-lan
    fi
    $lan link set "skv$i" master "$bridge" up
    ip -n "$ns" addr replace "$(node_ip "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route replace default via "$subnet.1"
  done

  "$skiff" server --data-dir "$dir/server" --https-listen-port "$port" \
    --advertise-address "$subnet.1" --tls-san "$subnet.1" --disable-agent \
    ${SERVER_ARGS:-} >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for _ in $(seq 1 600); do
    grep -q "skiff server is ready" "$dir/server.log" && break
    kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || { tail -30 "$dir/server.log"; exit 1; }
    sleep 0.2
  done

  for i in $(seq 1 "$nodes"); do
    # nsenter enters only the network namespace: the agent keeps the host's
    # mounts (cgroups under /sys/fs/cgroup), as a real node would.
    nsenter --net=/var/run/netns/skiff-n$i "$skiff" agent \
      --server "https://$subnet.1:$port" --token-file "$dir/server/token" \
      --data-dir "$dir/n$i" --node-name "skiff-n$i" --node-ip "$(node_ip "$i")" \
      --pod-network "${POD_NETWORK:-host-gw}" \
      >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
  for _ in $(seq 1 300); do
    n=$(KUBECONFIG="$dir/server/kubeconfig.yaml" "$skiff" kubectl get nodes --no-headers 2>/dev/null | grep -c " Ready " || true)
    [ "$n" -ge "$nodes" ] && break
    sleep 0.5
  done
  KUBECONFIG="$dir/server/kubeconfig.yaml" "$skiff" kubectl get nodes -o wide
}

stop_pid() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

down() {
  for f in "$dir"/n*.pid; do
    [ -e "$f" ] || continue
    i=$(basename "$f" .pid); i=${i#n}
    stop_pid "$f"
    if [ -e /var/run/netns/skiff-n$i ]; then
      nsenter --net=/var/run/netns/skiff-n$i "$skiff" agent teardown --data-dir "$dir/n$i" || true
    fi
  done
  stop_pid "$dir/server.pid"
  for ns in $(ip netns list 2>/dev/null | awk '/^skiff-n[0-9]+/{print $1}'); do
    i=${ns#skiff-n}
    [ -d "$dir/n$i" ] && nsenter --net=/var/run/netns/$ns "$skiff" agent teardown --data-dir "$dir/n$i" >/dev/null 2>&1 || true
    ip netns del "$ns" || true
  done
  ip link del skv0 2>/dev/null || true
  ip netns del skiff-lan 2>/dev/null || true
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: netns-cluster.sh up|down DIR [NODES] [PORT]" >&2; exit 2 ;;
esac
