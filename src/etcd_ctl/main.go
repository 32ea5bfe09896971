// Command etcd_ctl runs and manages one etcd member of a BOSH-deployed etcd cluster.
package main

import (
	"fmt"
	"os"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/cli"
)

func main() {
	if err := cli.NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd_ctl:", err)
		os.Exit(cli.ExitCode(err))
	}
}
