package deployer

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/manifest"
)

func TestCheckBridgeSubnets(t *testing.T) {
	bridge := netip.MustParsePrefix("10.244.0.1/16")
	nw := func(name string, subnets ...string) *manifest.CloudNetwork {
		n := &manifest.CloudNetwork{Name: name, Type: "manual"}
		for _, s := range subnets {
			r := netip.MustParsePrefix(s)
			n.Subnets = append(n.Subnets, &manifest.Subnet{Range: r, Gateway: r.Addr().Next()})
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		networks []*manifest.CloudNetwork
		err      string
	}{
		{"one network over the bridge", []*manifest.CloudNetwork{nw("default", "10.244.0.0/16")}, ""},
		{"the original etcd-release cloud-config", []*manifest.CloudNetwork{nw("public", "10.244.0.0/17"), nw("private", "10.244.128.0/17")}, ""},
		{"two subnets in one network", []*manifest.CloudNetwork{nw("default", "10.244.1.0/24", "10.244.2.0/24")}, ""},
		{"outside the bridge", []*manifest.CloudNetwork{nw("public", "10.244.0.0/17"), nw("other", "10.245.0.0/24")},
			"network 'other' subnet 10.245.0.0/24: VMs of this director live on bridge lbosh0 (10.244.0.1/16): the subnet must lie inside 10.244.0.0/16"},
		{"wider than the bridge", []*manifest.CloudNetwork{nw("wide", "10.0.0.0/8")}, "the subnet must lie inside 10.244.0.0/16"},
		{"overlapping networks", []*manifest.CloudNetwork{nw("public", "10.244.0.0/17"), nw("private", "10.244.64.0/18")},
			"network 'private' subnet 10.244.64.0/18 overlaps network 'public' subnet 10.244.0.0/17"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBridgeSubnets(bridge, "lbosh0", tc.networks)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
