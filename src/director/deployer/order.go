package deployer

import (
	"maps"
	"slices"
	"sort"

	"github.com/etcd-release/etcd-release/src/director/manifest"
)

// The update ordering of a BOSH director (cloudfoundry/bosh src/bosh-director/lib/bosh/director/
// instance_group_updater.rb, instance_plan_sorter.rb and the update stage in deployment_plan/stages/*), as pure
// functions:
//
//   - Groups update in manifest order; consecutive groups with `serial: false` form one batch that updates in
//     parallel, a `serial: true` group is a batch of its own. Errand groups are not updated by a deploy.
//   - Inside a group only the instances that need changes count. They update AZ by AZ: the bootstrap instance's
//     AZ first, then instances without an AZ, then the other AZs by name.
//   - In the first AZ, min(canaries(n), n) canaries run first (in a pool of max_in_flight(n)), and all must
//     finish before the rest start; later AZs have no canaries. n is the AZ's count of changed instances; a
//     percentage rounds down, max_in_flight is at least 1.
//   - The rest of each AZ runs as a sliding window of max_in_flight: a new update starts as soon as one ends
//     (runPool), not in fixed batches.
//   - Inside an AZ: the bootstrap instance first, then by uuid (not by index).

// updateBatches splits the groups into the batches a deploy updates one after another.
func updateBatches(groups []*groupPlan) [][]*groupPlan {
	var batches [][]*groupPlan
	var parallel []*groupPlan
	flush := func() {
		if len(parallel) > 0 {
			batches = append(batches, parallel)
			parallel = nil
		}
	}
	for _, gp := range groups {
		switch {
		case gp.g.Lifecycle == manifest.LifecycleErrand:
		case gp.g.Update.Serial:
			flush()
			batches = append(batches, []*groupPlan{gp})
		default:
			parallel = append(parallel, gp)
		}
	}
	flush()
	return batches
}

// wave is a set of instances updated together in a pool of width.
type wave struct {
	az        string
	canary    bool
	instances []*instancePlan
	width     int
}

// updateWaves orders a group's changed instances into waves: per AZ in azOrder, the first AZ's canaries, then
// each AZ's remaining instances. Empty waves are left out.
func updateWaves(changed []*instancePlan, bootAZ string, u manifest.Update) []wave {
	byAZ := map[string][]*instancePlan{}
	for _, ip := range changed {
		byAZ[ip.inst.AZ] = append(byAZ[ip.inst.AZ], ip)
	}
	var waves []wave
	for n, az := range azOrder(bootAZ, slices.Collect(maps.Keys(byAZ))) {
		list := byAZ[az]
		sortForUpdate(list)
		width := max(u.MaxInFlight.Of(len(list)), 1)
		rest := list
		if n == 0 {
			canaries := min(u.Canaries.Of(len(list)), len(list))
			if canaries > 0 {
				waves = append(waves, wave{az: az, canary: true, instances: list[:canaries], width: width})
			}
			rest = list[canaries:]
		}
		if len(rest) > 0 {
			waves = append(waves, wave{az: az, instances: rest, width: width})
		}
	}
	return waves
}

// azOrder orders the AZs that have changed instances: the bootstrap instance's AZ (if it has changes), then ""
// (instances without an AZ), then the others by name.
func azOrder(bootAZ string, azs []string) []string {
	var order []string
	if slices.Contains(azs, bootAZ) {
		order = append(order, bootAZ)
	}
	if bootAZ != "" && slices.Contains(azs, "") {
		order = append(order, "")
	}
	for _, az := range slices.Sorted(slices.Values(azs)) {
		if !slices.Contains(order, az) {
			order = append(order, az)
		}
	}
	return order
}

// sortForUpdate puts the bootstrap instance first, then the others by uuid.
func sortForUpdate(list []*instancePlan) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].inst.Bootstrap != list[j].inst.Bootstrap {
			return list[i].inst.Bootstrap
		}
		return list[i].inst.ID < list[j].inst.ID
	})
}

// bootstrapAZ is the AZ of the group's bootstrap instance ("" if none or without AZs).
func bootstrapAZ(instances []*instancePlan) string {
	az := ""
	for _, ip := range instances {
		if ip.inst.Bootstrap {
			az = ip.inst.AZ
		}
	}
	return az
}
