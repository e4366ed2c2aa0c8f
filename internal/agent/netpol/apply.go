package netpol

import (
	"context"
	"fmt"

	"sigs.k8s.io/knftables"
)

// apply replaces the table's contents with objs (from Render) in one
// transaction: every chain, set and map the table holds is flushed, objs are
// added, and what objs no longer name is deleted. Flushing first removes the
// rules and map elements that refer to stale chains and sets, so deleting
// them in the same transaction succeeds.
func apply(ctx context.Context, nft knftables.Interface, objs []knftables.Object) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	existing := map[string][]string{}
	for _, kind := range []string{"chains", "sets", "maps"} {
		names, err := nft.List(ctx, kind)
		if err != nil && !knftables.IsNotFound(err) {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		existing[kind] = names
	}
	for _, name := range existing["chains"] {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range existing["sets"] {
		tx.Flush(&knftables.Set{Name: name})
	}
	for _, name := range existing["maps"] {
		tx.Flush(&knftables.Map{Name: name})
	}
	want := map[string]bool{}
	for _, o := range objs {
		switch o := o.(type) {
		case *knftables.Chain:
			want["chains/"+o.Name] = true
		case *knftables.Set:
			want["sets/"+o.Name] = true
		case *knftables.Map:
			want["maps/"+o.Name] = true
		}
		tx.Add(o)
	}
	for _, name := range existing["sets"] {
		if !want["sets/"+name] {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
	for _, name := range existing["maps"] {
		if !want["maps/"+name] {
			tx.Delete(&knftables.Map{Name: name})
		}
	}
	for _, name := range existing["chains"] {
		if !want["chains/"+name] {
			tx.Delete(&knftables.Chain{Name: name})
		}
	}
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("apply table inet %s: %w", Table, err)
	}
	return nil
}
