package deployer

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
)

// inst is a compact existing instance: "id/index/az[/disk][/ip]" ("-" for no AZ, "disk" for a disk holder).
func inst(s string) state.Instance {
	parts := strings.Split(s, "/")
	var idx int
	fmt.Sscan(parts[1], &idx)
	in := state.Instance{Group: "g", ID: parts[0], Index: idx, AZ: strings.TrimPrefix(parts[2], "-"), State: "started"}
	for _, p := range parts[3:] {
		if p == "disk" {
			in.DiskCID = "disk-" + in.ID
		} else {
			in.IP = p
		}
	}
	return in
}

func insts(specs ...string) []state.Instance {
	var out []state.Instance
	for _, s := range specs {
		out = append(out, inst(s))
	}
	return out
}

// summary renders placed instances as "id/index/az" in order.
func summary(in []state.Instance) []string {
	var out []string
	for _, i := range in {
		az := i.AZ
		if az == "" {
			az = "-"
		}
		s := fmt.Sprintf("%s/%d/%s", i.ID, i.Index, az)
		if i.IP != "" {
			s += "/" + i.IP
		}
		out = append(out, s)
	}
	return out
}

// newIDs returns ids new1, new2, ... in order.
func newIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("new%d", n) }
}

func TestInstanceMakerTakesTheLowestFreeIndex(t *testing.T) {
	mk := instanceMaker("g", insts("a/0/z1", "b/2/z1", "c/3/z1"), newIDs())
	require.Equal(t, []string{"new1/1/z2", "new2/4/z1"}, summary([]state.Instance{mk("z2"), mk("z1")}))
}

func TestPlaceDynamic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		existing  []state.Instance
		n         int
		azs       []string
		keepDisks bool
		want      []string
		obsolete  []string
	}{
		{name: "first deploy spreads over AZs in name order", n: 5, azs: []string{"z2", "z1", "z3"},
			want: []string{"new1/0/z1", "new2/1/z2", "new3/2/z3", "new4/3/z1", "new5/4/z2"}},
		{name: "no AZs", n: 2, azs: []string{""}, want: []string{"new1/0/-", "new2/1/-"}},
		{name: "unchanged: every instance is reused in its AZ", existing: insts("a/0/z1", "b/1/z2", "c/2/z1"), n: 3, azs: []string{"z1", "z2"},
			want: []string{"a/0/z1", "b/1/z2", "c/2/z1"}},
		{name: "single-AZ scale-down removes the highest index", existing: insts("a/0/z1", "b/1/z1", "c/2/z1"), n: 2, azs: []string{"z1"},
			want: []string{"a/0/z1", "b/1/z1"}, obsolete: []string{"c/2/z1"}},
		{name: "scale-up refills the index gap", existing: insts("a/0/z1", "c/2/z2"), n: 3, azs: []string{"z1", "z2"},
			want: []string{"a/0/z1", "c/2/z2", "new1/1/z1"}},
		{name: "a removed AZ's instances move: new ones in the remaining AZs", existing: insts("a/0/z1", "b/1/z2", "c/2/z3"), n: 3, azs: []string{"z1", "z2"},
			want: []string{"a/0/z1", "b/1/z2", "new1/3/z1"}, obsolete: []string{"c/2/z3"}},
		{name: "disk holders are kept first, even against AZ balance", existing: insts("a/0/z1/disk", "b/1/z1/disk", "c/2/z2"), n: 2, azs: []string{"z1", "z2"}, keepDisks: true,
			want: []string{"a/0/z1", "b/1/z1"}, obsolete: []string{"c/2/z2"}},
		{name: "without a persistent disk, balance decides", existing: insts("a/0/z1/disk", "b/1/z1/disk", "c/2/z2"), n: 2, azs: []string{"z1", "z2"},
			want: []string{"a/0/z1", "c/2/z2"}, obsolete: []string{"b/1/z1"}},
		{name: "a tie prefers the AZ that still has an unclaimed instance", existing: insts("a/0/z2"), n: 1, azs: []string{"z1", "z2"},
			want: []string{"a/0/z2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desired, claimed := placeDynamic(tc.existing, tc.n, tc.azs, tc.keepDisks, instanceMaker("g", tc.existing, newIDs()))
			require.Equal(t, tc.want, summary(desired))
			require.Equal(t, tc.obsolete, summary(unclaimed(tc.existing, claimed)))
		})
	}
}

func TestChooseAZ(t *testing.T) {
	for _, tc := range []struct {
		name      string
		counts    map[string]int
		unclaimed []string
		want      string
	}{
		{"all empty: lowest name", map[string]int{}, nil, "z1"},
		{"fewest instances", map[string]int{"z1": 2, "z2": 1, "z3": 2}, nil, "z2"},
		{"tie: an AZ with an unclaimed instance", map[string]int{"z1": 1, "z2": 1, "z3": 1}, []string{"z3"}, "z3"},
		{"fewer wins over unclaimed", map[string]int{"z1": 0, "z2": 1}, []string{"z2"}, "z1"},
		{"tie between unclaimed: lowest name", map[string]int{}, []string{"z3", "z2"}, "z2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			has := func(az string) bool { return strings.Contains(strings.Join(tc.unclaimed, ","), az) }
			require.Equal(t, tc.want, chooseAZ([]string{"z1", "z2", "z3"}, tc.counts, has))
		})
	}
}

func subnets(t *testing.T, yaml string) *manifest.CloudNetwork {
	t.Helper()
	cc, err := manifest.ParseCloudConfig([]byte("azs: [{name: z1}, {name: z2}, {name: z3}]\nvm_types: [{name: default}]\nnetworks:\n- name: n\n  subnets:\n" + yaml))
	require.NoError(t, err)
	nw, ok := cc.Network("n")
	require.True(t, ok)
	return nw
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestPlaceStatic(t *testing.T) {
	oneSubnet := subnets(t, "  - {range: 10.0.0.0/24, gateway: 10.0.0.1, azs: [z1, z2, z3], static: [10.0.0.10-10.0.0.20]}\n")
	perAZ := subnets(t, "  - {range: 10.0.0.0/24, gateway: 10.0.0.1, az: z1, static: [10.0.0.10]}\n  - {range: 10.0.1.0/24, gateway: 10.0.1.1, az: z2, static: [10.0.1.10]}\n")
	for _, tc := range []struct {
		name     string
		nw       *manifest.CloudNetwork
		groupAZs []string
		existing []state.Instance
		statics  []netip.Addr
		want     []string
		obsolete []string
		err      string
	}{
		{name: "a shared subnet spreads new instances over the AZs", nw: oneSubnet, groupAZs: []string{"z1", "z2", "z3"},
			statics: addrs("10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"),
			want:    []string{"new1/0/z1/10.0.0.10", "new2/1/z2/10.0.0.11", "new3/2/z3/10.0.0.12", "new4/3/z1/10.0.0.13"}},
		{name: "the IP's subnet decides the AZ", nw: perAZ, groupAZs: []string{"z1", "z2"}, statics: addrs("10.0.1.10", "10.0.0.10"),
			want: []string{"new1/0/z2/10.0.1.10", "new2/1/z1/10.0.0.10"}},
		{name: "existing instances keep listed IPs and their AZ; an unlisted IP's instance goes", nw: oneSubnet, groupAZs: []string{"z1", "z2", "z3"},
			existing: insts("a/0/z1/10.0.0.10", "b/1/z2/10.0.0.11", "c/2/z3/10.0.0.12"), statics: addrs("10.0.0.10", "10.0.0.12"),
			want: []string{"a/0/z1/10.0.0.10", "c/2/z3/10.0.0.12"}, obsolete: []string{"b/1/z2/10.0.0.11"}},
		{name: "a replaced IP gets a new instance at the lowest free index", nw: oneSubnet, groupAZs: []string{"z1"},
			existing: insts("a/0/z1/10.0.0.10", "b/1/z1/10.0.0.11"), statics: addrs("10.0.0.10", "10.0.0.15"),
			want: []string{"a/0/z1/10.0.0.10", "new1/2/z1/10.0.0.15"}, obsolete: []string{"b/1/z1/10.0.0.11"}},
		{name: "no AZs", nw: oneSubnet, statics: addrs("10.0.0.10"), want: []string{"new1/0/-/10.0.0.10"}},
		{name: "an IP in no subnet", nw: oneSubnet, groupAZs: []string{"z1"}, statics: addrs("10.9.0.1"), err: "static IP 10.9.0.1 belongs to no subnet"},
		{name: "an IP whose subnet serves none of the group's AZs", nw: perAZ, groupAZs: []string{"z1"}, statics: addrs("10.0.1.10"),
			err: "static IP 10.0.1.10 belongs to a subnet in none of the group's azs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desired, claimed, err := placeStatic(tc.existing, tc.statics, tc.groupAZs, tc.nw.Subnets, instanceMaker("g", tc.existing, newIDs()))
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, summary(desired))
			require.Equal(t, tc.obsolete, summary(unclaimed(tc.existing, claimed)))
		})
	}
}

func TestAssignIPs(t *testing.T) {
	nw := subnets(t, "  - {range: 10.0.0.0/28, gateway: 10.0.0.1, azs: [z1], reserved: [10.0.0.2], static: [10.0.0.10-10.0.0.12]}\n"+
		"  - {range: 10.0.1.0/28, gateway: 10.0.1.1, azs: [z2]}\n")
	for _, tc := range []struct {
		name        string
		desired     []state.Instance
		haveStatics bool
		reserved    []string
		want        []string
		err         string
	}{
		{name: "lowest free: not the network, gateway, reserved, static or held elsewhere", desired: insts("a/0/z1", "b/1/z1"), reserved: []string{"10.0.0.3"},
			want: []string{"a/0/z1/10.0.0.4", "b/1/z1/10.0.0.5"}},
		{name: "a valid IP is kept", desired: insts("a/0/z1/10.0.0.7", "b/1/z1"), want: []string{"a/0/z1/10.0.0.7", "b/1/z1/10.0.0.3"}},
		{name: "an IP outside the AZ's subnets is replaced", desired: insts("a/0/z2/10.0.0.7"), want: []string{"a/0/z2/10.0.1.2"}},
		{name: "a static IP is replaced on a group without static IPs", desired: insts("a/0/z1/10.0.0.10"), want: []string{"a/0/z1/10.0.0.3"}},
		{name: "a static IP is kept on a group with static IPs", desired: insts("a/0/z1/10.0.0.10"), haveStatics: true, want: []string{"a/0/z1/10.0.0.10"}},
		{name: "a reserved IP is replaced", desired: insts("a/0/z1/10.0.0.2"), want: []string{"a/0/z1/10.0.0.3"}},
		{name: "the subnet is full (9 free addresses, 10 instances)", desired: insts("a/0/z1", "b/1/z1", "c/2/z1", "d/3/z1", "e/4/z1", "f/5/z1", "g/6/z1", "h/7/z1", "i/8/z1", "j/9/z1"),
			err: "Failed to reserve IP for network 'n' (az \"z1\"): no more available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reserved := map[netip.Addr]bool{}
			for _, a := range tc.reserved {
				reserved[netip.MustParseAddr(a)] = true
			}
			err := assignIPs(tc.desired, nw, tc.haveStatics, reserved)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, summary(tc.desired))
			for _, in := range tc.desired {
				require.True(t, reserved[netip.MustParseAddr(in.IP)], "%s is reserved afterwards", in.IP)
			}
		})
	}
}

func TestElectBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		indexes   []int
		bootstrap []bool
		want      []bool // by index order
	}{
		{"none marked: the lowest index", []int{2, 0, 1}, []bool{false, false, false}, []bool{true, false, false}},
		{"exactly one marked: sticky", []int{0, 1, 2}, []bool{false, true, false}, []bool{false, true, false}},
		{"two marked: re-elected", []int{0, 1, 2}, []bool{false, true, true}, []bool{true, false, false}},
		{"the marked one is gone: the lowest remaining", []int{1, 2}, []bool{false, false}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var desired []state.Instance
			for i, idx := range tc.indexes {
				desired = append(desired, state.Instance{Index: idx, Bootstrap: tc.bootstrap[i]})
			}
			electBootstrap(desired)
			var got []bool
			for i, in := range desired {
				if i > 0 {
					require.Less(t, desired[i-1].Index, in.Index, "sorted by index")
				}
				got = append(got, in.Bootstrap)
			}
			require.Equal(t, tc.want, got)
		})
	}
}
