package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
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
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}
