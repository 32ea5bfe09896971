package deployer

import (
	"fmt"
	"net/netip"

	"github.com/etcd-release/etcd-release/src/director/manifest"
)

// checkBridgeSubnets decides whether a cloud config's networks fit this director's bridge. Every VM sits on
// the one bridge, so every subnet of every network must lie inside the bridge's prefix, and no two subnets may
// overlap (an address would then belong to two networks on the same wire). Each subnet keeps its own range and
// gateway, as in BOSH: the original etcd-release cloud-config's `public` 10.244.0.0/17 (gateway 10.244.0.1) and
// `private` 10.244.128.0/17 (gateway 10.244.128.1) both fit the default bridge 10.244.0.1/16.
func checkBridgeSubnets(bridge netip.Prefix, bridgeName string, networks []*manifest.CloudNetwork) error {
	type owned struct {
		network string
		s       *manifest.Subnet
	}
	var seen []owned
	for _, nw := range networks {
		for _, s := range nw.Subnets {
			if !bridge.Masked().Contains(s.Range.Addr()) || s.Range.Bits() < bridge.Bits() {
				return fmt.Errorf("network '%s' subnet %s: VMs of this director live on bridge %s (%s): the subnet must lie inside %s",
					nw.Name, s.Range, bridgeName, bridge, bridge.Masked())
			}
			for _, o := range seen {
				if o.s.Range.Overlaps(s.Range) {
					return fmt.Errorf("network '%s' subnet %s overlaps network '%s' subnet %s: every subnet of this director shares bridge %s, give each its own range",
						nw.Name, s.Range, o.network, o.s.Range, bridgeName)
				}
			}
			seen = append(seen, owned{nw.Name, s})
		}
	}
	return nil
}
