// Package override rewrites a resource for one cluster before it is
// propagated there, with the fleet's OverridePolicies and
// ClusterOverridePolicies (Karmada's policy.karmada.io overriders), and
// strips what the upstream's API server filled in (Strip).
//
// # What it owns
//
// Pure functions over unstructured objects: Selects, Apply and Strip. It
// does not own listing the policies (the binding controller passes them),
// choosing the clusters (package placement) or applying the result
// downstream (the fleet agent).
//
// # Order
//
// Apply runs every ClusterOverridePolicy that selects the object, then
// every OverridePolicy of the object's namespace that selects it, each
// group in name order; within a policy its rules in order, each only when
// its targetCluster matches the cluster; within a rule the overriders
// image, command, args, labels, annotations, plaintext, each list in
// order. A policy without resourceSelectors selects every object it may
// see. A policy counts as applied (and is named in Apply's result) when at
// least one of its rules targets the cluster. Apply is all or nothing: on
// an error the object is left as it was.
//
// # Overriders
//
// imageOverrider rewrites the image at predicate.path, or else the image of
// every container and init container of the kind's pod template (Pod:
// /spec; Deployment, ReplicaSet, StatefulSet, DaemonSet, Job:
// /spec/template/spec; CronJob: /spec/jobTemplate/spec/template/spec;
// other kinds have none). An image is [registry/]repository[:tag][@digest],
// the registry being the first path component when it contains "." or ":"
// or is "localhost"; names are not normalised (nginx stays nginx, not
// docker.io/library/nginx). The operators on each component:
//
//	           add                 replace            remove
//	Registry   registry+value      registry = value   repository[:tag][@digest]
//	Repository repository+value    repository = value an error
//	Tag        tag = tag+value     tag = value        no tag, no digest
//
// Every Tag operation drops the digest, which would otherwise pin the old
// image; a replace value that looks like a digest (sha256:…, that is with a
// ":") sets the digest instead, without a tag. A predicate.path that does
// not lead to a string is an error.
//
// commandOverrider and argsOverrider change the container named
// containerName among the pod template's containers (not init
// containers): add appends the values, remove deletes every entry equal to
// one of them (and the field, when nothing is left). A kind without a pod
// template, or a template without that container, is left alone, so that
// one policy may select several workloads.
//
// labelsOverrider and annotationsOverrider: add sets the keys, replace sets
// only the keys already present, remove deletes the keys (the values are
// ignored).
//
// plaintext is one RFC 6902 operation each ({op: operator, path, value}),
// applied to the object's JSON; replace and remove fail on a path that
// does not exist, add on one whose parent does not exist.
//
// Errors name the policy, the rule and the overrider:
//
//	OverridePolicy default/op: overrideRules[0].overriders.plaintext[1]: path "/spec/foo/bar": …
package override
