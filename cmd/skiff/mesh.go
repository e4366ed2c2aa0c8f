package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffdev/skiff/internal/clusterconfig"
	"github.com/skiffdev/skiff/internal/mesh"
	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
	"github.com/skiffdev/skiff/internal/mesh/authz"
	"github.com/skiffdev/skiff/internal/server"
)

func newMeshCommand() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "mesh",
		Short: "Inspect the service mesh: enrolled workloads, their identities and policies",
		Long: `skiff's service mesh runs a node proxy on every node (no sidecars): pods of namespaces, or pods,
labelled ` + mesh.EnabledLabel + `=true are enrolled, get a SPIFFE identity with a certificate from the
mesh CA, and talk to each other over mutual TLS, under AuthorizationPolicies and PeerAuthentications
(mesh.skiff.dev/v1alpha1, Istio's security API).`,
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig `FILE` of the cluster (default: $KUBECONFIG, else the local server's admin kubeconfig, as for skiff kubectl)")

	var namespace, output string
	var allNamespaces bool
	status := &cobra.Command{
		Use:   "status [-n NAMESPACE | -A] [-o wide|json]",
		Short: "List the enrolled workloads with their identities, certificate expiry, mutual TLS mode and authorization policies",
		Long: `List the workloads (Deployments, StatefulSets, … as Istio names them) with pods enrolled in the mesh,
in all namespaces unless -n names one:

  PODS            pods whose node proxy holds a certificate for them / enrolled pods
  IDENTITY        the SPIFFE ID their traffic carries (spiffe://CLUSTER-DOMAIN/ns/NS/sa/SA)
  CERT EXPIRES    when the first of their certificates expires (Pending: no proxy has reported yet)
  MTLS            their mutual TLS mode from the PeerAuthentications: STRICT, PERMISSIVE or DISABLE
  AUTHZ POLICIES  how many AuthorizationPolicies apply to them (their namespace's and ` + authz.RootNamespace + `'s)

-o wide adds PROBLEM (a failed certificate request, or an expired certificate); -o json prints the
same as a JSON list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "wide" && output != "json" {
				return fmt.Errorf("--output %q: want wide or json", output)
			}
			cfg, err := meshClientConfig(kubeconfig)
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			objs, err := listMeshObjects(ctx, kube, dyn, namespace)
			if err != nil {
				return err
			}
			trustDomain, err := meshTrustDomain(ctx, kube, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			now := time.Now()
			rows := mesh.Status(objs.pods, objs.namespaces, objs.authz, objs.peer, trustDomain, now)
			if len(rows) == 0 && output != "json" {
				if namespace != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "No enrolled workloads found in %s namespace.\n", namespace)
				} else {
					fmt.Fprintln(cmd.ErrOrStderr(), "No enrolled workloads found.")
				}
				return nil
			}
			return printMeshStatus(cmd.OutOrStdout(), rows, output, now)
		},
	}
	status.Flags().StringVarP(&namespace, "namespace", "n", "", "only the workloads of `NAMESPACE` (default: all namespaces)")
	status.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "every namespace's workloads (the default)")
	status.Flags().StringVarP(&output, "output", "o", "", "output `FORMAT`: wide (adds PROBLEM) or json (default: a table)")
	status.MarkFlagsMutuallyExclusive("namespace", "all-namespaces")
	cmd.AddCommand(status)
	return cmd
}

// meshClientConfig is the client configuration of `skiff mesh`: kubeconfig
// when set, else $KUBECONFIG, else the local server's admin kubeconfig when
// there is one (else kubectl's ~/.kube/config): the defaults of `skiff
// kubectl` (runKubectl).
func meshClientConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	switch {
	case kubeconfig != "":
		rules.ExplicitPath = kubeconfig
	case os.Getenv("KUBECONFIG") == "":
		if path := server.PathsIn(defaultDataDir()).Kubeconfig; fileExists(path) {
			rules.ExplicitPath = path
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.Timeout = 30 * time.Second
	return cfg, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// meshObjects is what mesh.Status reads.
type meshObjects struct {
	pods       []*corev1.Pod
	namespaces []*corev1.Namespace
	authz      []*v1alpha1.AuthorizationPolicy
	peer       []*v1alpha1.PeerAuthentication
}

// listMeshObjects lists the pods and namespaces of namespace ("": all), and
// the mesh policies that may apply to them: namespace's and the root
// namespace's. Without the mesh's CRDs there are no policies.
func listMeshObjects(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace string) (meshObjects, error) {
	var objs meshObjects
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return objs, fmt.Errorf("list pods: %w", err)
	}
	for i := range pods.Items {
		objs.pods = append(objs.pods, &pods.Items[i])
	}
	if namespace == "" {
		nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return objs, fmt.Errorf("list namespaces: %w", err)
		}
		for i := range nss.Items {
			objs.namespaces = append(objs.namespaces, &nss.Items[i])
		}
	} else {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		switch {
		case err == nil:
			objs.namespaces = append(objs.namespaces, ns)
		case !apierrors.IsNotFound(err):
			return objs, fmt.Errorf("get namespace %s: %w", namespace, err)
		}
	}

	// Policies of the root namespace apply to every namespace.
	policyNamespaces := []string{namespace}
	if namespace != "" && namespace != authz.RootNamespace {
		policyNamespaces = append(policyNamespaces, authz.RootNamespace)
	}
	for _, pns := range policyNamespaces {
		if err := listPolicies(ctx, dyn, v1alpha1.AuthorizationPolicies, pns, &objs.authz); err != nil {
			return objs, err
		}
		if err := listPolicies(ctx, dyn, v1alpha1.PeerAuthentications, pns, &objs.peer); err != nil {
			return objs, err
		}
	}
	return objs, nil
}

// listPolicies appends the objects of gvr in namespace ("": all) to out,
// converted; a resource the API server does not serve (its CRD is missing)
// has none.
func listPolicies[T any](ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, namespace string, out *[]*T) error {
	list, err := dyn.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	for _, u := range list.Items {
		obj := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			return fmt.Errorf("%s %s/%s: %w", gvr.GroupResource(), u.GetNamespace(), u.GetName(), err)
		}
		*out = append(*out, obj)
	}
	return nil
}

// meshTrustDomain is the mesh's trust domain, the cluster domain, from the
// published cluster configuration; cluster.local (the default) when the
// cluster has none or the user may not read it (then with a warning on
// stderr).
func meshTrustDomain(ctx context.Context, kube kubernetes.Interface, stderr io.Writer) (string, error) {
	c, err := clusterconfig.Fetch(ctx, kube)
	switch {
	case err == nil:
		return c.ClusterDomain, nil
	case apierrors.IsNotFound(err):
		return clusterconfig.Default().ClusterDomain, nil
	case apierrors.IsForbidden(err):
		fmt.Fprintf(stderr, "Warning: %v; assuming the trust domain %s\n", err, clusterconfig.Default().ClusterDomain)
		return clusterconfig.Default().ClusterDomain, nil
	default:
		return "", err
	}
}

// printMeshStatus prints rows as a table (output "" or "wide") or as JSON,
// with certificate expiry relative to now.
func printMeshStatus(w io.Writer, rows []mesh.WorkloadStatus, output string, now time.Time) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "    ")
		return enc.Encode(rows)
	}
	wide := output == "wide"
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAMESPACE\tWORKLOAD\tPODS\tIDENTITY\tCERT EXPIRES\tMTLS\tAUTHZ POLICIES"
	if wide {
		header += "\tPROBLEM"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%s\t%d/%d\t%s\t%s\t%s\t%d", r.Namespace, r.Workload, r.Ready, r.Pods, r.Identity,
			certExpires(r, now), r.MTLS, r.AuthzPolicies)
		if wide {
			line += "\t" + orNone(r.Problem)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// certExpires is the CERT EXPIRES column: the time left, kubectl-style
// (23h, 5d), <expired>, Pending when no pod's node proxy has reported, else
// <unknown>.
func certExpires(r mesh.WorkloadStatus, now time.Time) string {
	switch {
	case !r.Expiry.IsZero() && !r.Expiry.After(now):
		return "<expired>"
	case !r.Expiry.IsZero():
		return duration.HumanDuration(r.Expiry.Sub(now))
	case r.Pending == r.Pods:
		return "Pending"
	default:
		return "<unknown>"
	}
}

// orNone is s, or kubectl's <none> for an empty column.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
