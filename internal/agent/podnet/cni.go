package podnet

import (
	"fmt"
	"strings"
)

// BridgeName is the pods' bridge on each node.
const BridgeName = "skiff0"

// cniTemplate is rendered by containerd (a Go template over the podCIDRs)
// when the kubelet reports the node's podCIDR: a bridge with host-local
// addresses from that CIDR, and portmap for hostPort.
const cniTemplate = `{
  "cniVersion": "0.4.0",
  "name": "skiff",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "@BRIDGE@",@MTU@
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "@IPAM_DIR@",
        "ranges": [{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// CNITemplate is the CNI configuration template for containerd's
// conf_template, with pod addresses kept in ipamDir; the pods' MTU leaves
// room for the backend's encapsulation.
func CNITemplate(backend, ipamDir string) string {
	mtu := ""
	if backend == BackendVXLAN {
		mtu = fmt.Sprintf("\n      \"mtu\": %d,", 1500-vxlanOverhead)
	}
	return strings.NewReplacer("@IPAM_DIR@", ipamDir, "@BRIDGE@", BridgeName, "@MTU@", mtu).Replace(cniTemplate)
}
