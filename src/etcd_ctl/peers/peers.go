// Package peers says who the members of this deployment's cluster should be. The answer comes from BOSH (the
// etcd link, etcd.machines or etcd.cluster); a Source may additionally make those members reachable by name
// (e.g. register with and resolve through consul DNS) before anyone dials them.
package peers

import (
	"context"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Source lists the desired members, this instance included (Member.Self), with URLs ready to dial.
type Source interface {
	Members(ctx context.Context) ([]config.Member, error)
}

// Static takes the members from the configuration as they are: IPs or names that already resolve.
type Static struct{ Config *config.Config }

// Members implements Source.
func (s Static) Members(context.Context) ([]config.Member, error) { return s.Config.DesiredMembers() }

// Others returns members without this instance.
func Others(members []config.Member) []config.Member {
	var out []config.Member
	for _, m := range members {
		if !m.Self {
			out = append(out, m)
		}
	}
	return out
}

// ClientURLs of members.
func ClientURLs(members []config.Member) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		out = append(out, m.ClientURL)
	}
	return out
}

// For returns the Source `etcd_ctl start` uses: with etcd.consul.enabled a Consul source that registers this
// member and waits for consul DNS names; otherwise the configuration as it is.
func For(c *config.Config, lg *zap.Logger) Source {
	if c.Etcd.Consul.Enabled {
		return NewConsul(c, lg, true)
	}
	return Static{Config: c}
}

// ForClient returns the Source of commands that talk to a running cluster (drain): the same members, without
// registering anything. A consul source still deregisters this member when drain asks it to.
func ForClient(c *config.Config, lg *zap.Logger) Source {
	if c.Etcd.Consul.Enabled {
		return NewConsul(c, lg, false)
	}
	return Static{Config: c}
}
