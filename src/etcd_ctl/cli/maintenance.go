package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
)

// clusterClient returns a client for every member's client URL, read through endpoint (default: this member).
func clusterClient(c *config.Config, endpoint string) (*clientv3.Client, error) {
	if endpoint == "" {
		endpoint = c.Self().ClientURL
	}
	cli, err := etcdclient.New(c, []string{endpoint}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	cl, err := maintenance.Gather(ctx, cli)
	cli.Close()
	if err != nil {
		return nil, err
	}
	return etcdclient.New(c, cl.Endpoints(), 5*time.Second)
}

// onCluster loads the config at path, connects to every member through endpoint and runs fn until it returns or
// the command is interrupted.
func onCluster(path, endpoint string, fn func(ctx context.Context, c *config.Config, cli *clientv3.Client) error) error {
	c, err := loadConfig(path)
	if err != nil {
		return err
	}
	cli, err := clusterClient(c, endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := signalContext()
	defer cancel()
	return fn(ctx, c, cli)
}

// addEndpointFlag adds --endpoint, the client URL a cluster command reaches the cluster through.
func addEndpointFlag(cmd *cobra.Command, endpoint *string) {
	cmd.Flags().StringVar(endpoint, "endpoint", "", "client URL to reach the cluster through (default: this member's)")
}

func newCompactCmd() *cobra.Command {
	var path, endpoint string
	var keep int64
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Compact the keyspace now: drop every revision older than the current one minus --keep-revisions",
		Long: `Compact the keyspace now (etcd's automatic compaction, etcd.auto_compaction_*, does this continuously).
Watchers behind the compacted revision get a "compacted" error and must re-read. Compaction frees pages
inside the db file; etcd_ctl defrag gives them back to the file system. Works while the NOSPACE alarm is
raised.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return onCluster(path, endpoint, func(ctx context.Context, _ *config.Config, cli *clientv3.Client) error {
				rev, err := maintenance.CompactNow(ctx, cli, keep)
				switch {
				case err != nil:
					return err
				case rev == 0:
					fmt.Fprintln(cmd.OutOrStdout(), "nothing to compact")
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "compacted to revision %d\n", rev)
				}
				return nil
			})
		},
	}
	addConfigFlag(cmd, &path)
	addEndpointFlag(cmd, &endpoint)
	cmd.Flags().Int64Var(&keep, "keep-revisions", 0, "keep this many revisions below the current one")
	return cmd
}

func newDefragCmd() *cobra.Command {
	var path, endpoint string
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Defragment every member, one at a time, leadership moved away first (NOSPACE recovery if the alarm is raised)",
		Long: `Defragment every member that answers, one at a time in member ID order, holding the cluster lock
` + maintenance.LockKey + ` (shared with the maintenance loops, so two members are never defragmented
together). A member is skipped when the other voters alone are not a healthy quorum; the leader hands
leadership over first. With the NOSPACE alarm raised it runs NOSPACE recovery instead: compact to the
current revision, defragment every member above the disarm limit, disarm the alarm (no lock: the alarm
refuses the lock's write).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return onCluster(path, endpoint, func(ctx context.Context, c *config.Config, cli *clientv3.Client) error {
				r := &maintenance.Runner{Config: c, Client: cli, Log: newLogger(false)}
				results, skipped, err := r.DefragAll(ctx)
				out := cmd.OutOrStdout()
				for _, res := range results {
					fmt.Fprintf(out, "%s: %s → %s (reclaimed %s) in %s\n", res.Member, maintenance.Bytes(res.Before),
						maintenance.Bytes(res.After), maintenance.Bytes(res.Reclaimed()), res.Took.Round(time.Millisecond))
				}
				for _, s := range skipped {
					fmt.Fprintf(out, "%s: %s\n", s.Action, s.Reason)
				}
				return err
			})
		},
	}
	addConfigFlag(cmd, &path)
	addEndpointFlag(cmd, &endpoint)
	return cmd
}
