// Command bench-defrag measures what a cluster-wide defragmentation (`etcd_ctl defrag`: one member at a time,
// leadership moved away first) costs clients, with real etcd_ctl processes on loopback: a 3-member cluster (no
// TLS) is filled with -db-mib of data, half of it deleted and compacted away (so every member's db file is
// -db-mib with half of it free); then a writer runs at -rate puts/s through all endpoints, first alone for
// -baseline, then while `etcd_ctl defrag` defragments every member. It prints failed writes, the longest stall
// between two acknowledged writes and the p50/p99/max write latency of both runs, and each member's
// defragmentation time and reclaimed bytes.
//
// Targets (issue 13): 0 failed writes, longest stall < 250 ms, p99 ≤ 2× the run without defragmentation.
// It prints figures and asserts nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/bench/benchcluster"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

func main() {
	dbMiB := flag.Int("db-mib", 1024, "db file size to build on every member (half of it is then freed)")
	valueKiB := flag.Int("value-kib", 16, "value size used to fill the db")
	rate := flag.Int("rate", 100, "writes per second of the measured load")
	baseline := flag.Duration("baseline", 20*time.Second, "duration of the run without defragmentation")
	flag.Parse()
	if err := run(*dbMiB, *valueKiB, *rate, *baseline); err != nil {
		fmt.Fprintln(os.Stderr, "bench-defrag:", err)
		os.Exit(1)
	}
}

func run(dbMiB, valueKiB, rate int, baseline time.Duration) error {
	work, err := os.MkdirTemp("", "bench-defrag-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := benchcluster.Build(work)
	if err != nil {
		return err
	}
	l := &localcluster.Layout{Dir: work, Deployment: "bench-defrag", Base: net.IPv4(127, 0, 62, 1), Tweak: func(_ int, p *config.Properties) {
		p.QuotaBackendBytes = int64(dbMiB) << 21 // twice the data: the fill never nears the quota
		p.AutoCompactionRetention = "0"          // the benchmark compacts itself
		p.Maintenance.Enabled = false            // only the measured `etcd_ctl defrag` defragments
	}}
	bc, err := benchcluster.Start(l, bin, 3)
	if err != nil {
		return err
	}
	defer bc.Stop()
	cli, err := bc.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	t0 := time.Now()
	if err := fill(cli, dbMiB, valueKiB); err != nil {
		return err
	}
	if out, err := bc.Ctl(0, "compact"); err != nil {
		return fmt.Errorf("etcd_ctl compact: %v: %s", err, out)
	}
	fmt.Printf("filled %d MiB (%d KiB values), deleted every other key and compacted in %s\n", dbMiB, valueKiB, time.Since(t0).Round(time.Second))

	load := benchcluster.StartLoad(cli, "/base", rate)
	time.Sleep(baseline)
	base := load.Stop()

	load = benchcluster.StartLoad(cli, "/defrag", rate)
	time.Sleep(time.Second)
	out, derr := bc.Ctl(1, "defrag")
	time.Sleep(time.Second)
	during := load.Stop()
	if derr != nil {
		return fmt.Errorf("etcd_ctl defrag: %v\n%s", derr, out)
	}
	fmt.Printf("\netcd_ctl defrag (one member at a time):\n")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "(reclaimed ") {
			fmt.Println("  " + line)
		}
	}
	fmt.Printf("\n%d writes/s through all endpoints      %8s %7s %8s %8s %8s %8s\n", rate, "acked", "failed", "stall", "p50", "p99", "max")
	for _, r := range []struct {
		name string
		res  benchcluster.LoadResult
	}{{"without defragmentation", base}, {"during etcd_ctl defrag", during}} {
		fmt.Printf("%-38s %8d %7d %8s %8s %8s %8s\n", r.name, len(r.res.Latencies), r.res.Failed, r.res.LongestStall.Round(time.Millisecond),
			r.res.Percentile(50).Round(100*time.Microsecond), r.res.Percentile(99).Round(100*time.Microsecond), r.res.Percentile(100).Round(100*time.Microsecond))
		for e, n := range r.res.Errors {
			fmt.Printf("    %d× %s\n", n, e)
		}
	}
	if p := base.Percentile(99); p > 0 {
		fmt.Printf("p99 ratio (during / without): %.2f×\n", float64(during.Percentile(99))/float64(p))
	}
	return nil
}

// fill writes dbMiB of values with 16 writers, then deletes every other key so that half the file is free pages
// once compacted.
func fill(cli *clientv3.Client, dbMiB, valueKiB int) error {
	value := strings.Repeat("f", valueKiB<<10)
	n := dbMiB << 10 / valueKiB
	const writers = 16
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := w; i < n; i += writers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("/fill/%08d", i), value)
				if err == nil && i%2 == 1 {
					_, err = cli.Delete(ctx, fmt.Sprintf("/fill/%08d", i))
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("filling: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}
