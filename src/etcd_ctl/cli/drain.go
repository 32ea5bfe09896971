package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/drain"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/supervisor"
)

func newPreStopCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "pre-stop",
		Short: "BOSH pre-stop: record whether the whole deployment is being deleted (BOSH_DEPLOYMENT_NEXT_STATE)",
		Long: `Implements bin/pre-stop. When BOSH_DEPLOYMENT_NEXT_STATE is "delete", the drain that follows keeps the
member list instead of removing members one by one (which would lose quorum while every instance goes away).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			return drain.PreStop(c.Paths.RunDir, os.Getenv("BOSH_DEPLOYMENT_NEXT_STATE"))
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}

func newDrainCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "drain job_shutdown|job_changed|job_new|job_check_status hash_changed|hash_unchanged|hash_new [packages...]",
		Short: "BOSH drain: move leadership away; remove the member only when the instance is being deleted",
		Long: `Implements the BOSH drain contract. Reads BOSH_JOB_NEXT_STATE ({"persistent_disk":N}); when N is 0 the
instance is being deleted and its member is removed from the cluster (refused if that would lose quorum).
Otherwise only leadership is moved away. Prints the number of seconds BOSH should wait (0) on stdout; logs
go to stderr.`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := drain.ParseRequest(args, os.Getenv("BOSH_JOB_NEXT_STATE"))
			if err != nil {
				return err
			}
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			lg := newLogger(c.Etcd.EnableDebugLogging)
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			if err := os.MkdirAll(c.Paths.RunDir, 0o755); err != nil {
				return err
			}
			if _, err := os.Stat(drain.DeploymentDeletedMarker(c.Paths.RunDir)); err == nil {
				req.DeploymentDeleted = true
			}
			secs, err := drain.Run(ctx, c, peers.ForClient(c, lg), req, supervisor.DrainMarker(c), lg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secs)
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}
