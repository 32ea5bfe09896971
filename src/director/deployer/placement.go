package deployer

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
)

// The placement rules of a BOSH director (cloudfoundry/bosh src/bosh-director/lib/bosh/director/
// placement_planner/*, instance_planner.rb and ip_provider/*), as pure functions of the group's existing
// instances. existing is always sorted by index; newInstance makes a new instance in an AZ (a fresh uuid and the
// lowest unused index).
//
//   - An instance's uuid never changes; a new instance takes the lowest index no instance record of the group
//     holds, so gaps are refilled.
//   - Without static IPs: existing instances with a persistent disk in a desired AZ are kept first (lowest index
//     first, even against AZ balance); each remaining slot goes to the AZ with the fewest instances so far, a tie
//     preferring an AZ that still holds an unclaimed existing instance, then the lowest AZ name; in that AZ the
//     lowest-index unclaimed existing instance is reused, or a new one made. So a single-AZ scale-down removes
//     the highest indexes.
//   - With static IPs: an existing instance keeps a static IP that is still listed; unclaimed IPs go to new
//     instances in list order; the subnet an IP belongs to decides the AZ.
//   - Unclaimed existing instances are obsolete.
//   - Bootstrap is sticky: re-elected (the lowest index) only when not exactly one desired instance holds it.

// instanceMaker returns the newInstance function for a group: new instances take the lowest index no existing
// instance holds, in the order they are made, and an id from newID.
func instanceMaker(group string, existing []state.Instance, newID func() string) func(az string) state.Instance {
	used := map[int]bool{}
	for _, e := range existing {
		used[e.Index] = true
	}
	return func(az string) state.Instance {
		i := 0
		for used[i] {
			i++
		}
		used[i] = true
		return state.Instance{Group: group, ID: newID(), Index: i, AZ: az, State: "started"}
	}
}

// placeDynamic places n instances over azs (a group without AZs passes [""]) without static IPs. keepDisks is
// whether the group has a persistent disk (disk holders are then kept first). It returns the desired instances
// and the ids of the existing ones it kept.
func placeDynamic(existing []state.Instance, n int, azs []string, keepDisks bool, newInstance func(string) state.Instance) ([]state.Instance, map[string]bool) {
	claimed := map[string]bool{}
	counts := map[string]int{}
	var desired []state.Instance
	if keepDisks {
		for _, e := range existing {
			if len(desired) < n && e.DiskCID != "" && slices.Contains(azs, e.AZ) {
				claimed[e.ID] = true
				counts[e.AZ]++
				desired = append(desired, e)
			}
		}
	}
	sortedAZs := slices.Sorted(slices.Values(azs))
	hasUnclaimed := func(az string) bool {
		return slices.ContainsFunc(existing, func(e state.Instance) bool { return e.AZ == az && !claimed[e.ID] })
	}
	for len(desired) < n {
		az := chooseAZ(sortedAZs, counts, hasUnclaimed)
		counts[az]++
		i := slices.IndexFunc(existing, func(e state.Instance) bool { return e.AZ == az && !claimed[e.ID] })
		if i < 0 {
			desired = append(desired, newInstance(az))
			continue
		}
		claimed[existing[i].ID] = true
		desired = append(desired, existing[i])
	}
	return desired, claimed
}

// chooseAZ picks the AZ for the next instance: the fewest instances so far; on a tie, one that still holds an
// unclaimed existing instance; then the first in sortedAZs (the lowest name).
func chooseAZ(sortedAZs []string, counts map[string]int, hasUnclaimed func(string) bool) string {
	best, bestHas := "", false
	for i, az := range sortedAZs {
		has := hasUnclaimed(az)
		if i == 0 || counts[az] < counts[best] || (counts[az] == counts[best] && has && !bestHas) {
			best, bestHas = az, has
		}
	}
	return best
}

// placeStatic places one instance per static IP. Existing instances keep their IP while it is still listed (and
// get the AZ its subnet decides, their own when possible); the remaining IPs go to new instances in list order.
func placeStatic(existing []state.Instance, statics []netip.Addr, groupAZs []string, subnets []*manifest.Subnet, newInstance func(string) state.Instance) ([]state.Instance, map[string]bool, error) {
	claimed := map[string]bool{}
	azCount := map[string]int{}
	taken := map[netip.Addr]bool{}
	var desired []state.Instance
	for _, e := range existing {
		a, err := netip.ParseAddr(e.IP)
		if err != nil || !slices.Contains(statics, a) || taken[a] {
			continue
		}
		az, err := staticAZ(a, e.AZ, groupAZs, subnets, azCount)
		if err != nil {
			return nil, nil, err
		}
		e.AZ = az
		taken[a], claimed[e.ID] = true, true
		desired = append(desired, e)
	}
	for _, a := range statics {
		if taken[a] {
			continue
		}
		az, err := staticAZ(a, "", groupAZs, subnets, azCount)
		if err != nil {
			return nil, nil, err
		}
		inst := newInstance(az)
		inst.IP = a.String()
		desired = append(desired, inst)
	}
	return desired, claimed, nil
}

// staticAZ decides the AZ of the instance holding static IP ip: among the group's AZs that the IP's subnet
// serves (all of them for a subnet without AZs), prefer if it is one, else the one with the fewest instances so
// far in azCount (the lowest name on a tie), so instances spread as without static IPs. It counts the choice in
// azCount. A group without AZs gets "".
func staticAZ(ip netip.Addr, prefer string, groupAZs []string, subnets []*manifest.Subnet, azCount map[string]int) (string, error) {
	i := slices.IndexFunc(subnets, func(s *manifest.Subnet) bool { return s.Range.Contains(ip) })
	if i < 0 {
		return "", fmt.Errorf("static IP %s belongs to no subnet", ip)
	}
	if len(groupAZs) == 0 {
		return "", nil
	}
	var candidates []string
	for _, az := range groupAZs {
		if len(subnets[i].AZs) == 0 || slices.Contains(subnets[i].AZs, az) {
			candidates = append(candidates, az)
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("static IP %s belongs to a subnet in none of the group's azs", ip)
	}
	best := prefer
	if prefer == "" || !slices.Contains(candidates, prefer) {
		slices.Sort(candidates)
		best = candidates[0]
		for _, az := range candidates[1:] {
			if azCount[az] < azCount[best] {
				best = az
			}
		}
	}
	azCount[best]++
	return best, nil
}

// unclaimed returns the existing instances placement did not keep: they are obsolete.
func unclaimed(existing []state.Instance, claimed map[string]bool) []state.Instance {
	var out []state.Instance
	for _, e := range existing {
		if !claimed[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

// assignIPs keeps each instance's IP while it is still valid (in a subnet of its AZ, not restricted, and, on a
// group without static IPs, not in a static range) and gives the others the lowest free address. Every IP it
// keeps or hands out is added to reserved.
func assignIPs(desired []state.Instance, nw *manifest.CloudNetwork, haveStatics bool, reserved map[netip.Addr]bool) error {
	for i := range desired {
		inst := &desired[i]
		if a, err := netip.ParseAddr(inst.IP); err == nil {
			if s := subnetFor(nw, a); s != nil && s.HasAZ(inst.AZ) && !s.Restricted(a) && (haveStatics || !s.IsStatic(a)) {
				reserved[a] = true
				continue
			}
		}
		a, err := lowestFree(nw, inst.AZ, reserved)
		if err != nil {
			return err
		}
		reserved[a] = true
		inst.IP = a.String()
	}
	return nil
}

// electBootstrap sorts the desired instances by index and keeps the bootstrap mark where it is when exactly one
// instance holds it; otherwise the lowest index becomes the bootstrap instance.
func electBootstrap(desired []state.Instance) {
	sort.Slice(desired, func(i, j int) bool { return desired[i].Index < desired[j].Index })
	n := 0
	for _, inst := range desired {
		if inst.Bootstrap {
			n++
		}
	}
	if n == 1 {
		return
	}
	for i := range desired {
		desired[i].Bootstrap = i == 0
	}
}
