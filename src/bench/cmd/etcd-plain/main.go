// Command etcd-plain is etcd's own server main (go.etcd.io/etcd/server/v3/etcdmain) built from this module's pinned
// etcd version. It exists only as the baseline for benchmarks: the same server etcd_ctl embeds, without etcd_ctl.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
