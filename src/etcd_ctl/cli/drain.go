package cli

import (
	"context"
	"fmt"
	"io"
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
		Short: "BOSH pre-stop: record BOSH_INSTANCE_NEXT_STATE and BOSH_DEPLOYMENT_NEXT_STATE for the drain that follows",
		Long: `Implements bin/pre-stop. Records BOSH_VM_NEXT_STATE, BOSH_INSTANCE_NEXT_STATE and
BOSH_DEPLOYMENT_NEXT_STATE in the run dir. The drain that follows removes the member only when the instance is
being deleted, and keeps the member list when the whole deployment is (removing members one by one would lose
quorum while every instance goes away).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			return drain.PreStop(c.Paths.RunDir, drain.NextStates{VM: os.Getenv("BOSH_VM_NEXT_STATE"),
				Instance: os.Getenv("BOSH_INSTANCE_NEXT_STATE"), Deployment: os.Getenv("BOSH_DEPLOYMENT_NEXT_STATE")})
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
		Long: `Implements the BOSH drain contract. The member is removed from the cluster (refused if that would lose
quorum) only when its instance is being deleted: pre-stop's BOSH_INSTANCE_NEXT_STATE=delete, or, when pre-stop
recorded nothing, BOSH_JOB_NEXT_STATE {"persistent_disk":0} while BOSH_JOB_STATE had a disk. Otherwise only
leadership is moved away. Prints the number of seconds BOSH should wait (0) on stdout; logs go to stderr.`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return runDrain(ctx, path, args, cmd.OutOrStdout())
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}

// runDrain decides with what pre-stop recorded and BOSH's job state, and prints the seconds BOSH should wait.
func runDrain(ctx context.Context, path string, args []string, stdout io.Writer) error {
	req, err := drain.ParseRequest(args, os.Getenv("BOSH_JOB_STATE"), os.Getenv("BOSH_JOB_NEXT_STATE"))
	if err != nil {
		return err
	}
	c, err := loadConfig(path)
	if err != nil {
		return err
	}
	lg := newLogger(c.Etcd.EnableDebugLogging)
	defer lg.Sync()
	if err := os.MkdirAll(c.Paths.RunDir, 0o755); err != nil {
		return err
	}
	if req.PreStop, err = drain.ReadPreStop(c.Paths.RunDir); err != nil {
		return err
	}
	secs, err := drain.Run(ctx, c, peers.ForClient(c, lg), req, supervisor.DrainMarker(c), lg)
	if err != nil {
		// The record stays, so that a retried drain decides the same way.
		return err
	}
	if req.Kind != "job_check_status" {
		drain.ClearPreStop(c.Paths.RunDir)
	}
	fmt.Fprintln(stdout, secs)
	return nil
}
