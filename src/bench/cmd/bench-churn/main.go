// Command bench-churn measures how etcd_ctl's keyspace maintenance holds a small quota under a fixed churn, with
// real etcd_ctl processes on loopback: a 3-member cluster (no TLS) with etcd.quota_backend_bytes = -quota-mib,
// -keys keys of -value-kib overwritten at -rate puts/s for -duration. Every -sample it prints each member's db
// size and in-use size; at the end the number of failed puts (NOSPACE included), the alarms, the largest db file,
// and, once automatic compaction dropped the history (2 × retention after the last put), the db sizes after a
// cluster-wide `etcd_ctl defrag` against the live data.
//
// Targets (issue 13): never NOSPACE at a quota 10× the live data; db ≤ 2× live data after a defragmentation.
// It prints figures and asserts nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/bench/benchcluster"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

type options struct {
	quotaMiB, keys, valueKiB, rate int
	duration, sample               time.Duration
	retention                      string
	interval                       int
}

func main() {
	var o options
	flag.IntVar(&o.quotaMiB, "quota-mib", 32, "etcd.quota_backend_bytes in MiB")
	flag.IntVar(&o.keys, "keys", 50, "keys overwritten in turn")
	flag.IntVar(&o.valueKiB, "value-kib", 64, "size of each value (live data = keys × value)")
	flag.IntVar(&o.rate, "rate", 20, "puts per second")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the churn runs")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "how often sizes are printed")
	flag.StringVar(&o.retention, "retention", "10s", "etcd.auto_compaction_retention (periodic)")
	flag.IntVar(&o.interval, "check-interval", 5, "etcd.maintenance.check_interval_in_seconds")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-churn:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	work, err := os.MkdirTemp("", "bench-churn-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := benchcluster.Build(work)
	if err != nil {
		return err
	}
	quota := int64(o.quotaMiB) << 20
	l := &localcluster.Layout{Dir: work, Deployment: "bench-churn", Base: net.IPv4(127, 0, 61, 1), Tweak: func(_ int, p *config.Properties) {
		p.QuotaBackendBytes = quota
		p.AutoCompactionMode, p.AutoCompactionRetention = config.CompactionPeriodic, o.retention
		p.Maintenance.CheckIntervalInSeconds = o.interval
		p.Maintenance.DefragMinDBSizeBytes = quota / 8
	}}
	bc, err := benchcluster.Start(l, bin, 3)
	if err != nil {
		return err
	}
	defer bc.Stop()
	c0, eps := bc.Config(0), bc.Endpoints()
	cli, err := bc.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	live := int64(o.keys) * int64(o.valueKiB) << 10
	fmt.Printf("churn: %d keys × %d KiB (live data %s) at %d puts/s for %s; quota %s (%.0f× live); compaction periodic %s; maintenance every %d s\n",
		o.keys, o.valueKiB, maintenance.Bytes(live), o.rate, o.duration, maintenance.Bytes(quota), float64(quota)/float64(live), o.retention, o.interval)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	go sample(ctx, c0, eps[0], o.sample)
	acked, failed, errs, written := churn(ctx, cli, o)
	maxDB := maxSeen.Load()
	st, err := status.Gather(context.Background(), c0, eps[0])
	if err != nil {
		return err
	}
	alarms := 0
	for _, m := range st.Members {
		alarms += len(m.Alarms)
	}
	fmt.Printf("\nputs acknowledged %d, failed %d %v; written %s (%.1f× quota); alarms raised at the end: %d; largest db file seen %s (%.0f%% of quota)\n",
		acked, failed, errs, maintenance.Bytes(written), float64(written)/float64(quota), alarms, maintenance.Bytes(maxDB), 100*float64(maxDB)/float64(quota))
	// Automatic compaction drops the churn's history one retention after the last write; wait for it, so the
	// comparison below is of the live data with what defragmentation leaves, not with the retained history.
	if d, err := config.ParsePeriodicRetention(o.retention); err == nil && d > 0 {
		fmt.Printf("waiting %s (2 × retention) for automatic compaction to drop the churn's history\n", 2*d)
		time.Sleep(2 * d)
	}
	out, err := bc.Ctl(0, "defrag")
	if err != nil {
		return fmt.Errorf("etcd_ctl defrag: %v\n%s", err, out)
	}
	fmt.Printf("after etcd_ctl defrag (live data %s):\n%s", maintenance.Bytes(live), out)
	st, err = status.Gather(context.Background(), c0, eps[0])
	if err != nil {
		return err
	}
	for _, m := range st.Members {
		fmt.Printf("  %s: db %s = %.2f× live data\n", m.Name, maintenance.Bytes(m.DBSize), float64(m.DBSize)/float64(live))
	}
	return nil
}

// maxSeen is the largest db file the sampler saw.
var maxSeen atomic.Int64

func sample(ctx context.Context, c *config.Config, ep string, every time.Duration) {
	start := time.Now()
	for ctx.Err() == nil {
		st, err := status.Gather(ctx, c, ep)
		if err == nil {
			var parts []string
			for _, m := range st.Members {
				if m.DBSize > maxSeen.Load() {
					maxSeen.Store(m.DBSize)
				}
				parts = append(parts, fmt.Sprintf("%s db %8s in use %8s", m.Name, maintenance.Bytes(m.DBSize), maintenance.Bytes(m.DBSizeInUse)))
			}
			fmt.Printf("t=%4.0fs  %s\n", time.Since(start).Seconds(), strings.Join(parts, " | "))
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

func churn(ctx context.Context, cli *clientv3.Client, o options) (acked, failed int, errs map[string]int, written int64) {
	errs = map[string]int{}
	value := strings.Repeat("c", o.valueKiB<<10)
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.Put(pctx, fmt.Sprintf("/churn/%d", n%o.keys), value)
		pcancel()
		switch {
		case err == nil:
			acked++
			written += int64(len(value))
		case ctx.Err() == nil:
			failed++
			errs[err.Error()]++
		}
	}
}
