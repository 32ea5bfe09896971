package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
)

type statusOptions struct {
	configPath string
	endpoint   string
	json       bool
}

func newStatusCmd() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this member and the cluster as seen from it (members, leader, health, raft index; with consul, the agent's registrations)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return o.run(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addConfigFlag(cmd, &o.configPath)
	cmd.Flags().StringVar(&o.endpoint, "endpoint", "", "client URL to ask (default: this member's advertised client URL)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func newWaitReadyCmd() *cobra.Command {
	var path string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait-ready",
		Short: "Wait until this member is a caught-up voting member serving quorum reads (the job's post-start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if timeout == 0 {
				if timeout, err = postStartTimeout(c.Etcd.PostStartTimeoutInSeconds); err != nil {
					return err
				}
			}
			start := time.Now()
			err = status.WaitReady(ctx, c, timeout, func(msg string) {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %s is ready (took %s)\n", c.SelfName(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: etcd.post_start_timeout_in_seconds from the config)")
	return cmd
}

// postStartTimeout turns etcd.post_start_timeout_in_seconds into wait-ready's timeout, refusing what
// config.Validate refuses (bin/post-start passes no timeout of its own).
func postStartTimeout(secs int) (time.Duration, error) {
	if secs < 1 || secs > config.MaxPostStartTimeoutInSeconds {
		return 0, &config.PropertyError{Property: "etcd.post_start_timeout_in_seconds",
			Problem: fmt.Sprintf("got %d, must be between 1 and %d seconds (default 600)", secs, config.MaxPostStartTimeoutInSeconds)}
	}
	return time.Duration(secs) * time.Second, nil
}

// run prints the report; an unhealthy cluster or a recorded conflict exits 2 after the report, so that scripts
// can tell "etcd answered, and something is wrong" from "etcd did not answer" (exit 1).
func (o *statusOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	c, err := loadConfig(o.configPath)
	if err != nil {
		return err
	}
	ep := o.endpoint
	if ep == "" {
		ep = c.Self().ClientURL
	}
	r, err := status.Gather(ctx, c, ep)
	if err != nil {
		return unreachable(c, stderr, err)
	}
	r.AddMaintenance(c)
	if c.Etcd.Consul.Enabled {
		r.AddConsul(ctx, peers.NewConsul(c, zap.NewNop(), false))
	}
	r.AddMovedAside(c.Paths.DataDir)
	r.AddBackup(ctx, c, time.Now())
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		status.Print(stdout, r)
	}
	if r.Conflict != "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("conflict: %s", r.Conflict)}
	}
	if !r.Healthy {
		return &ExitError{Code: 2, Err: fmt.Errorf("cluster %s is not healthy", r.ClusterID)}
	}
	return nil
}

// unreachable explains a member whose etcd does not answer with what this disk holds: the moved-aside copies
// and a recorded conflict.
func unreachable(c *config.Config, stderr io.Writer, err error) error {
	local := &status.Report{}
	local.AddMovedAside(c.Paths.DataDir)
	status.PrintMovedAside(stderr, local)
	if conflict, _ := membership.ReadConflict(c); conflict != "" {
		return fmt.Errorf("%w\nCONFLICT: %s", err, conflict)
	}
	return err
}
