package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

func newValidateCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and all TLS material without starting anything (the job's pre-start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			warnings, err := c.Validate(time.Now())
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err != nil {
				return fmt.Errorf("invalid configuration in %s:\n%w", path, err)
			}
			if c.Etcd.Consul.Enabled {
				if err := peers.CheckAgent(c); err != nil {
					// Not a failure: on a first deploy pre-start runs before monit starts the colocated agent.
					fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: the consul agent at %s (etcd.consul.agent_url) does not answer: %v\n"+
						"WARNING: etcd_ctl start will wait up to %d seconds (etcd.consul.wait_timeout_in_seconds) for it to accept this member's registration; "+
						"on a first deploy this is expected (monit starts the consul agent after pre-start), otherwise check the agent with monit summary\n",
						c.Etcd.Consul.AgentURL, err, c.Etcd.Consul.WaitTimeoutInSeconds)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "consul agent at %s answers\n", c.Etcd.Consul.AgentURL)
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}
