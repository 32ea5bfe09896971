// Command local-director is a single-machine BOSH director (src/director) and a thin client for it.
//
// `serve` runs the director in the foreground: the director API over HTTPS with basic auth, and VMs made of
// namespaces on a bridge of this machine. The other commands are client helpers that talk to a running director
// through the director API only (src/director/client), like the bosh CLI: upload-stemcell, upload-release,
// update-cloud-config, deploy (with client-side ((vars)) interpolation), instances, run-errand,
// delete-deployment, task.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/director/client"
)

func main() {
	root := &cobra.Command{
		Use:           "local-director",
		Short:         "A single-machine BOSH director for etcd-release development and tests",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand())
	addClientCommands(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "local-director:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode maps errors to exit codes in one place: 1 for everything, 2 for a failed task, the errand's own exit
// code for an errand that ran and failed.
func exitCode(err error) int {
	var ee *errandExitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var tf *client.TaskFailedError
	if errors.As(err, &tf) {
		return 2
	}
	return 1
}
