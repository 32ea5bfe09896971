package membership

import (
	"sort"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// IsCreator reports whether this instance is the one member of the whole deployment that may create a cluster.
// Every member computes the same answer from the same desired member list, so BOSH's per-group bootstrap flag
// (one per instance group) can never yield two creators:
//
//   - etcd link: the provider instance the link marks bootstrap (a link comes from one instance group, which has
//     exactly one); a link without one falls back to the lowest (group, index);
//   - etcd.machines: the first address listed;
//   - etcd.cluster: index 0 of the first group listed.
func IsCreator(c *config.Config, desired []config.Member) bool {
	if c.PeerSource() == "etcd link" {
		return linkCreator(c.Link.Instances, c.Instance)
	}
	return len(desired) > 0 && desired[0].Self
}

func linkCreator(ins []config.LinkInstance, self config.Instance) bool {
	if len(ins) == 0 {
		return false
	}
	var chosen *config.LinkInstance
	for i := range ins {
		if ins[i].Bootstrap {
			chosen = &ins[i]
			break
		}
	}
	if chosen == nil {
		sorted := append([]config.LinkInstance(nil), ins...)
		sort.Slice(sorted, func(i, j int) bool {
			if sorted[i].Name != sorted[j].Name {
				return sorted[i].Name < sorted[j].Name
			}
			return sorted[i].Index < sorted[j].Index
		})
		chosen = &sorted[0]
	}
	if chosen.ID != "" && self.ID != "" {
		return chosen.ID == self.ID
	}
	return chosen.Name == self.Name && chosen.Index == self.Index
}
