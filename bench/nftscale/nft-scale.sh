#!/usr/bin/env bash
# Times the kernel's cost of loading a kube-proxy-shaped nftables ruleset:
# N Service chains, each with a numgen vmap over 5 endpoint chains (a jump
# and a DNAT rule each), and N elements in a service-ips verdict map — the
# shape of upstream kube-proxy's nftables table. It loads the chains first,
# then the rules and elements as ONE transaction (as kube-proxy's full sync
# does), and again in a fresh namespace split into K transactions.
#
#   sudo bench/nftscale/nft-scale.sh N [K]     e.g. 4000 4
#
# Runs in a network namespace of its own (nft-scale), deleted at the end.
set -euo pipefail
n=${1:?usage: nft-scale.sh N [K]}
k=${2:-4}
ns=nft-scale
dir=$(mktemp -d)
trap 'ip netns del $ns 2>/dev/null || true; rm -rf "$dir"' EXIT

awk -v n="$n" 'BEGIN {
  print "add table ip kp" > "'"$dir"'/chains.nft"
  print "add chain ip kp services" > "'"$dir"'/chains.nft"
  print "add map ip kp service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }" > "'"$dir"'/chains.nft"
  for (i = 0; i < n; i++) {
    printf "add chain ip kp svc-%d\n", i > "'"$dir"'/chains.nft"
    vm = ""
    for (e = 0; e < 5; e++) {
      k = i * 5 + e
      printf "add chain ip kp ep-%d-%d\n", i, e > "'"$dir"'/chains.nft"
      printf "add rule ip kp ep-%d-%d ip saddr 10.45.0.1 jump services\n", i, e > "'"$dir"'/rules.nft"
      printf "add rule ip kp ep-%d-%d meta l4proto tcp dnat to 10.%d.%d.%d:80\n", i, e, 45 + int(k / 65536), int(k / 256) % 256, k % 256 > "'"$dir"'/rules.nft"
      vm = vm (e ? ", " : "") e " : goto ep-" i "-" e
    }
    printf "add rule ip kp svc-%d numgen random mod 5 vmap { %s }\n", i, vm > "'"$dir"'/rules.nft"
    printf "add element ip kp service-ips { 10.43.%d.%d . tcp . 80 : goto svc-%d }\n", int(i / 250), i % 250 + 1, i > "'"$dir"'/rules.nft"
  }
}'

fresh() {
  ip netns del $ns 2>/dev/null || true
  ip netns add $ns
  ip netns exec $ns nft -f "$dir/chains.nft"
}
secs() { local s; s=$(date +%s.%N); "$@"; awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

echo "N=$n Services: $(wc -l <"$dir/chains.nft") chains, $(wc -l <"$dir/rules.nft") rules and elements; $(nft --version); kernel $(uname -r)"
fresh
echo "one transaction:      $(secs ip netns exec $ns nft -f "$dir/rules.nft") s"
fresh
split -n "l/$k" -d "$dir/rules.nft" "$dir/part."
total=0
for p in "$dir"/part.*; do
  t=$(secs ip netns exec $ns nft -f "$p")
  total=$(awk -v a="$total" -v b="$t" 'BEGIN { printf "%.2f", a + b }')
done
echo "$k transactions:       $total s"
