package cli

import (
	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/supervisor"
)

func newStartCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Validate, decide bootstrap/join/restart, and run the embedded etcd in the foreground",
		Long: `Run this etcd member in the foreground until SIGTERM or SIGINT. The configuration and all TLS
material are validated first; a member with bad input starts nothing and touches no data. On SIGTERM the
member moves leadership away (if it is the leader) and stops gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			lg := newLogger(c.Etcd.EnableDebugLogging)
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			return supervisor.Run(ctx, c, lg)
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}
