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
# AGENT_BIN runs the nodes' agents from another binary (default: SKIFF_BIN).
# AGENT_ARGS adds flags to every `skiff agent` (split on spaces), e.g.
# AGENT_ARGS="--images-dir DIR".
#
# SERVERS=3 in the environment makes the control plane highly available:
# the first server (--cluster-init) in the host's namespace, the others each
# in a network namespace of its own (skiff-s2… at 172.31.250.2…, host name
# skiff-sI in a UTS namespace), joined with --server and the server token,
# data in DIR/sI, logs DIR/sI.log, pids DIR/sI.pid.
#
# After `up`: KUBECONFIG=DIR/server/kubeconfig.yaml; nodes skiff-n1… at
# 172.31.250.11…; the server at 172.31.250.1. Needs root, iproute2, nsenter
# (and unshare, for SERVERS).
#
# The bridge lives in its own namespace (skiff-lan), not the host's: bridged
# traffic there passes through that namespace's (empty) netfilter hooks
# instead of the host's, whose rules (another skiff, Docker, a firewall)
# would see foreign pod addresses. The servers get a route to each node's
# podCIDR (webhooks and aggregated API servers run in pods).
set -euo pipefail

cmd=${1:?usage: netns-cluster.sh up|down DIR [NODES] [PORT]}
dir=${2:?usage: netns-cluster.sh up|down DIR [NODES] [PORT]}
nodes=${3:-3}
port=${4:-16443}
servers=${SERVERS:-1}
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

  ha=()
  [ "$servers" -gt 1 ] && ha=(--cluster-init)
  "$skiff" server --data-dir "$dir/server" --https-listen-port "$port" \
    --advertise-address "$subnet.1" --tls-san "$subnet.1" --disable-agent \
    "${ha[@]}" ${SERVER_ARGS:-} >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  wait_ready server
  for i in $(seq 2 "$servers"); do
    ns=skiff-s$i
    ip netns add "$ns" 2>/dev/null || true
    if ! $lan link show "skvs$i" >/dev/null 2>&1; then
      ip -n "$ns" link add eth0 type veth peer name "skvs$i" netns skiff-lan
    fi
    $lan link set "skvs$i" master "$bridge" up
    ip -n "$ns" addr replace "$subnet.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    start_server "$i" --server "https://$subnet.1:$port" --token-file "$dir/server/token"
    wait_ready "s$i"
  done

  for i in $(seq 1 "$nodes"); do
    # nsenter enters only the network namespace: the agent keeps the host's
    # mounts (cgroups under /sys/fs/cgroup), as a real node would.
    nsenter --net=/var/run/netns/skiff-n$i "${AGENT_BIN:-$skiff}" agent \
      --server "https://$subnet.1:$port" --token-file "$dir/server/token" \
      --data-dir "$dir/n$i" --node-name "skiff-n$i" --node-ip "$(node_ip "$i")" \
      --pod-network "${POD_NETWORK:-host-gw}" ${AGENT_ARGS:-} \
      >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
  for _ in $(seq 1 300); do
    n=$(KUBECONFIG="$dir/server/kubeconfig.yaml" "$skiff" kubectl get nodes --no-headers 2>/dev/null | grep -c " Ready " || true)
    [ "$n" -ge "$nodes" ] && break
    sleep 0.5
  done
  route_pods
  KUBECONFIG="$dir/server/kubeconfig.yaml" "$skiff" kubectl get nodes -o wide
}

# route_pods gives the servers (which have no node, so no pod network of
# their own) a route to each node's podCIDR via the node, as a control plane
# host on the nodes' link needs one: the API server calls admission and
# conversion webhooks and aggregated API servers at their pods' addresses.
# (Routes through skv0 go with it at `down`.)
route_pods() {
  local kubectl=("$skiff" kubectl --kubeconfig "$dir/server/kubeconfig.yaml") name ip cidr i
  local jp='{range .items[*]}{.metadata.name}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{" "}{.spec.podCIDR}{"\n"}{end}'
  for _ in $(seq 1 120); do
    "${kubectl[@]}" get nodes -o jsonpath="$jp" | awk 'NF < 3 {missing = 1} END {exit !missing}' || break
    sleep 0.5
  done
  "${kubectl[@]}" get nodes -o jsonpath="$jp" | while read -r name ip cidr; do
    [ -n "$cidr" ] || { echo "node $name has no podCIDR yet: no route to its pods" >&2; continue; }
    ip route replace "$cidr" via "$ip"
    for i in $(seq 2 "$servers"); do
      ip -n "skiff-s$i" route replace "$cidr" via "$ip"
    done
  done
}

# wait_ready NAME waits until DIR/NAME.log says the server is ready.
wait_ready() {
  for _ in $(seq 1 900); do
    grep -q "skiff server is ready" "$dir/$1.log" && return 0
    kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null || { tail -30 "$dir/$1.log"; exit 1; }
    sleep 0.2
  done
  echo "server $1 not ready" >&2
  tail -30 "$dir/$1.log"
  exit 1
}

# start_server I [FLAGS…] starts server I (2…) in its namespace skiff-sI.
start_server() {
  local i=$1
  shift
  nsenter --net=/var/run/netns/skiff-s$i unshare --uts sh -c 'hostname "$0" && exec "$@"' "skiff-s$i" \
    "$skiff" server --data-dir "$dir/s$i" --https-listen-port "$port" \
    --advertise-address "$subnet.$i" --tls-san "$subnet.$i" --disable-agent \
    "$@" ${SERVER_ARGS:-} >>"$dir/s$i.log" 2>&1 &
  echo $! >"$dir/s$i.pid"
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
  for f in "$dir"/s[0-9]*.pid; do
    [ -e "$f" ] && stop_pid "$f"
  done
  stop_pid "$dir/server.pid"
  for ns in $(ip netns list 2>/dev/null | awk '/^skiff-s[0-9]+/{print $1}'); do
    ip netns del "$ns" || true
  done
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
