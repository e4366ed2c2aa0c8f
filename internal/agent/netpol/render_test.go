package netpol

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/knftables"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const node = "n1"

// cluster is the world every case renders against: node n1 holds web-0,
// client, db-0 and dev/tool; n2 holds the rest.
func cluster() ([]*corev1.Pod, []*corev1.Namespace) {
	pods := []*corev1.Pod{
		makePod("shop", "web-0").node("n1").ip("10.42.1.10").label("app", "web").port("http", 8080, "").obj(),
		makePod("shop", "web-1").node("n2").ip("10.42.2.10").label("app", "web").port("http", 8080, "").obj(),
		makePod("shop", "client").node("n1").ip("10.42.1.20").label("role", "client").obj(),
		makePod("shop", "other").node("n2").ip("10.42.2.20").obj(),
		makePod("shop", "db-0").node("n1").ip("10.42.1.30").label("app", "db").port("pg", 5432, "").obj(),
		makePod("monitoring", "prom").node("n2").ip("10.42.2.40").label("app", "prom").obj(),
		makePod("dev", "tool").node("n1").ip("10.42.1.50").label("role", "client").obj(),
		makePod("kube-system", "dns").node("n2").ip("10.42.2.53").label("k8s-app", "kube-dns").
			port("dns", 53, corev1.ProtocolUDP).port("dns-tcp", 53, corev1.ProtocolTCP).obj(),
		// Never protected nor peers: host network, no address yet, finished.
		makePod("shop", "hostnet").node("n1").ip("172.31.250.11").label("app", "web").hostNetwork().obj(),
		makePod("shop", "pending").node("n1").label("app", "web").obj(),
		makePod("shop", "done").node("n1").ip("10.42.1.99").label("app", "web").phase(corev1.PodSucceeded).obj(),
	}
	namespaces := []*corev1.Namespace{
		makeNamespace("shop", "team", "shop"),
		makeNamespace("monitoring", "team", "ops"),
		makeNamespace("dev", "team", "dev"),
		makeNamespace("kube-system"),
	}
	return pods, namespaces
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
	}{
		{name: "no-policies"},
		{
			// No rules: web-0 (the only web pod on n1) accepts nothing new.
			name:     "default-deny-ingress",
			policies: []*networkingv1.NetworkPolicy{makePolicy("shop", "deny-web").selector("app=web").types(ingressOnly...).obj()},
		},
		{
			// From every pod of namespaces labelled team=ops on 8080, and from
			// pods labelled role=client in namespaces labelled team=dev (AND).
			name: "allow-from-namespace-label",
			policies: []*networkingv1.NetworkPolicy{makePolicy("shop", "from-ops").selector("app=web").types(ingressOnly...).
				ingress(peers(nsPeer("team=ops")), tcp(8080)).
				ingress(peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: selPtr("team=dev"), PodSelector: selPtr("role=client")})).
				obj()},
		},
		{
			// IPv6 blocks are not filtered (the pod network is IPv4).
			name: "ipblock-except",
			policies: []*networkingv1.NetworkPolicy{makePolicy("shop", "blocks").selector("app=web").types(ingressOnly...).
				ingress(peers(blockPeer("10.42.0.0/16", "10.42.2.0/24", "10.42.1.20/32"), blockPeer("192.168.7.9/24"), blockPeer("2001:db8::/32")), udp(53), tcp(8080)).
				obj()},
		},
		{
			// db accepts "pg" from web (resolved on db-0 itself); web may
			// reach "pg" on the db pods (resolved on each peer) and
			// "missing", which no pod declares, reaches nothing; to anyone,
			// "dns" over UDP (declared by kube-system/dns) and "http" (web).
			name: "named-port",
			policies: []*networkingv1.NetworkPolicy{
				makePolicy("shop", "db").selector("app=db").types(ingressOnly...).ingress(peers(podPeer("app=web")), namedPort("pg")).obj(),
				makePolicy("shop", "web-out").selector("app=web").types(egressOnly...).
					egress(peers(podPeer("app=db")), namedPort("pg"), namedPort("missing")).
					egress(nil, namedPort("dns", corev1.ProtocolUDP), namedPort("dns"), namedPort("http")).
					obj(),
			},
		},
		{
			name: "egress-deny-dns",
			policies: []*networkingv1.NetworkPolicy{makePolicy("shop", "dns-only").selector().types(egressOnly...).
				egress(nil, udp(53), tcp(53)).obj()},
		},
		{
			// Overlapping and adjacent ranges merge; SCTP by protocol only.
			name: "port-ranges",
			policies: []*networkingv1.NetworkPolicy{makePolicy("shop", "ranges").selector("app=web").types(ingressOnly...).
				ingress(peers(podPeer()), tcp(80), portRangePort(corev1.ProtocolTCP, 8000, 9000), tcp(8080),
					portRangePort(corev1.ProtocolTCP, 9001, 9100), protoOnly(corev1.ProtocolSCTP),
					protoOnly(corev1.ProtocolUDP), udp(53)).
				obj()},
		},
		{
			// Two policies select web-0: their rules add up. One rule
			// without peers or ports allows everything.
			name: "union",
			policies: []*networkingv1.NetworkPolicy{
				makePolicy("shop", "a").selector("app=web").types(ingressOnly...).ingress(peers(podPeer("role=client")), tcp(8080)).obj(),
				makePolicy("shop", "b").selector("app=web").types(ingressOnly...).ingress(peers(nsPeer("team=ops"))).obj(),
				makePolicy("shop", "all-to-db").selector("app=db").types(ingressOnly...).ingress(nil).obj(),
			},
		},
		{
			// Without policyTypes: Ingress always, Egress when there are
			// egress rules. A policy in another namespace selects nothing here.
			name: "default-policy-types",
			policies: []*networkingv1.NetworkPolicy{
				makePolicy("shop", "web").selector("app=web").egress(peers(podPeer("app=db")), tcp(5432)).obj(),
				makePolicy("shop", "client").selector("role=client").obj(),
				makePolicy("monitoring", "elsewhere").selector().obj(),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, namespaces := cluster()
			got := transactionText(Render(node, tc.policies, pods, namespaces))
			golden := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendered rules differ from %s (run with -update to accept):\n%s", golden, diff(string(want), got))
			}
			// Deterministic: the same inputs in another order render the same.
			reverse(pods)
			if again := transactionText(Render(node, reversed(tc.policies), pods, namespaces)); again != got {
				t.Errorf("rendering depends on input order:\n%s", diff(got, again))
			}
		})
	}
}

// TestGoldenFilesLoad checks every golden file with the kernel: nft parses
// and evaluates it (check mode, in a network namespace of its own).
func TestGoldenFilesLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nft --check needs root")
	}
	for _, tool := range []string{"nft", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	files, _ := filepath.Glob("testdata/*.nft")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		if out, err := exec.Command("unshare", "-n", "nft", "-c", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("nft -c -f %s: %v\n%s", f, err, out)
		}
	}
}

// TestApplyReplaces applies one rule set over another: the table ends up
// exactly as if the second had been applied to an empty one, with stale
// chains and sets gone.
func TestApplyReplaces(t *testing.T) {
	pods, namespaces := cluster()
	first := []*networkingv1.NetworkPolicy{
		makePolicy("shop", "from-ops").selector("app=web").types(ingressOnly...).ingress(peers(nsPeer("team=ops")), tcp(8080)).obj(),
		makePolicy("shop", "dns-only").selector().types(egressOnly...).egress(nil, udp(53)).obj(),
	}
	second := []*networkingv1.NetworkPolicy{
		makePolicy("shop", "db").selector("app=db").types(ingressOnly...).ingress(peers(podPeer("app=web")), namedPort("pg")).obj(),
	}
	ctx := context.Background()
	nft := knftables.NewFake(knftables.InetFamily, Table)
	for _, pols := range [][]*networkingv1.NetworkPolicy{first, second} {
		if err := apply(ctx, nft, Render(node, pols, pods, namespaces)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := knftables.NewFake(knftables.InetFamily, Table)
	if err := apply(ctx, fresh, Render(node, second, pods, namespaces)); err != nil {
		t.Fatal(err)
	}
	if got, want := nft.Dump(), fresh.Dump(); got != want {
		t.Errorf("after replacing:\n%s", diff(want, got))
	}
	for _, stale := range []string{"pod-ingress/10.42.1.10", "pod-egress/10.42.1.20"} {
		if nft.Table.Chains[stale] != nil {
			t.Errorf("stale chain %s was kept", stale)
		}
	}
	if len(nft.Table.Sets) != 1 {
		t.Errorf("sets = %v, want only the db rule's", keys(nft.Table.Sets))
	}
	// Applying the same rule set again changes nothing.
	if err := apply(ctx, nft, Render(node, second, pods, namespaces)); err != nil {
		t.Fatal(err)
	}
	if got, want := nft.Dump(), fresh.Dump(); got != want {
		t.Errorf("after re-applying:\n%s", diff(want, got))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func reversed[T any](s []T) []T {
	out := append([]T(nil), s...)
	reverse(out)
	return out
}

// diff lists the lines only in want (-) and only in got (+).
func diff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)\n--- want\n" + want + "--- got\n" + got
	}
	return b.String()
}
