package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

type renderOptions struct{ configPath string }

func newRenderCmd() *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the etcd configuration this member would run with, as etcd command-line flags",
		Long: `Print the etcd configuration this member would run with, as the equivalent etcd flags (one per line;
TLS material appears only as file paths). It works offline: the bootstrap instance is shown creating a
one-member cluster; any other instance is shown joining with --initial-cluster-state=existing and the
desired member list (at join time the exact live list is read from the cluster).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(o.configPath)
			if err != nil {
				return err
			}
			return Render(cmd.OutOrStdout(), c)
		},
	}
	addConfigFlag(cmd, &o.configPath)
	return cmd
}

// OfflinePlan is the plan shown by render: what this member does when it finds no data and no live cluster
// information.
func OfflinePlan(c *config.Config) (etcdserver.Plan, error) {
	desired, err := c.DesiredMembers()
	if err != nil {
		return etcdserver.Plan{}, err
	}
	// The deployment's one creator (membership.IsCreator), not every BOSH bootstrap instance: with several
	// instance groups each has one. A real creation adds a random nonce to the token, which render cannot know.
	if membership.IsCreator(c, desired) {
		return etcdserver.Plan{State: etcdserver.StateNew, InitialCluster: []config.Member{c.Self()}}, nil
	}
	for i := range desired {
		if desired[i].Name == "" {
			desired[i].Name = "<name-from-cluster>"
		}
	}
	return etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: desired}, nil
}

// Render writes the flags for c's offline plan to w.
func Render(w io.Writer, c *config.Config) error {
	plan, err := OfflinePlan(c)
	if err != nil {
		return err
	}
	ecfg, err := etcdserver.BuildConfig(c, plan)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, strings.Join(etcdserver.Flags(ecfg), "\n"))
	return err
}
