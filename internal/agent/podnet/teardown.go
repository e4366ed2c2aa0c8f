package podnet

import (
	"context"
	"os/exec"

	"sigs.k8s.io/knftables"
)

// Teardown removes what the pod network leaves on a node when its agent is
// gone: the masquerade table, the VXLAN device, and the bridge, and with it
// the neighbour entries of the pods that are gone, so that a later agent
// reusing their addresses starts clean. Routes through the bridge go with
// it. It is idempotent.
func Teardown(ctx context.Context) {
	if nft, err := knftables.New(knftables.IPv4Family, natTable); err == nil {
		tx := nft.NewTransaction()
		tx.Delete(&knftables.Table{})
		_ = nft.Run(ctx, tx) // not found: nothing to remove
	}
	_ = exec.CommandContext(ctx, "ip", "link", "delete", BridgeName).Run()
	_ = exec.CommandContext(ctx, "ip", "link", "delete", vxlanDevice).Run()
}
