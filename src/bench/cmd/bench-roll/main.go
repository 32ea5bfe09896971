// Command bench-roll measures what membership handling costs clients and operators, with real etcd_ctl processes
// on loopback:
//
//  1. a rolling restart of a 3-member TLS cluster under a steady writer (50 writes/s through all endpoints), once
//     with etcd_ctl's graceful stop (leadership moved away first) and once with SIGKILL (no transfer, as the old
//     CF etcdfab and etcd-manager stopped etcd): longest write stall, failed writes, restart times;
//  2. one member's restart with N MiB of data: keep-data restart (what etcd_ctl does) vs wipe + automatic rejoin
//     with a full resync (what the old release did on every stop).
//
// It prints figures and asserts nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/loadgen"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

func main() {
	dataMiB := flag.Int("data-mib", 1024, "data written before the restart-time comparison")
	valueKiB := flag.Int("value-kib", 16, "size of each value written for the restart-time comparison")
	rate := flag.Int("rate", 50, "writes per second during the rolling restart")
	skipData := flag.Bool("skip-data", false, "only run the rolling-restart comparison")
	skipRoll = flag.Bool("skip-roll", false, "only run the restart-time comparison")
	keepWork = flag.Bool("keep", false, "keep the work dir (data dirs and member logs) for inspection")
	flag.Parse()
	if err := run(*dataMiB, *valueKiB, *rate, *skipData); err != nil {
		fmt.Fprintln(os.Stderr, "bench-roll:", err)
		os.Exit(1)
	}
}

var skipRoll, keepWork *bool

type bench struct {
	bin    string
	layout *localcluster.Layout
	procs  map[int]*localcluster.Process
}

func run(dataMiB, valueKiB, rate int, skipData bool) error {
	work, err := os.MkdirTemp("", "bench-roll-")
	if err != nil {
		return err
	}
	defer func() {
		if *keepWork {
			fmt.Println("work dir kept:", work)
			return
		}
		os.RemoveAll(work)
	}()
	bin := filepath.Join(work, "etcd_ctl")
	if out, err := exec.Command("go", "build", "-o", bin, "./src/etcd_ctl").CombinedOutput(); err != nil {
		return fmt.Errorf("building etcd_ctl: %v\n%s", err, out)
	}
	fmt.Printf("rolling restart of 3 TLS members under %d writes/s (client with all endpoints)\n", rate)
	fmt.Printf("%-34s %12s %8s %8s %22s\n", "stop method", "acked", "failed", "stall", "restart times")
	for i, mode := range []string{"SIGTERM (leadership moved first)", "SIGKILL (no transfer)"} {
		if *skipRoll {
			break
		}
		b, err := newBench(work, bin, fmt.Sprintf("roll%d", i), byte(40+i))
		if err != nil {
			return err
		}
		res, times, err := b.roll(rate, i == 1)
		b.stopAll()
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		fmt.Printf("%-34s %12d %8d %8s %22s\n", mode, len(res.Acked), res.Failed, res.LongestStall.Round(time.Millisecond), times)
		for _, e := range res.Errors {
			fmt.Printf("    failed write: %s\n", e)
		}
	}
	if skipData {
		return nil
	}
	b, err := newBench(work, bin, "data", 50)
	if err != nil {
		return err
	}
	defer b.stopAll()
	keep, resync, err := b.restartTimes(dataMiB, valueKiB)
	if err != nil {
		return err
	}
	fmt.Printf("\none member restart with %d MiB of data (%d KiB values)\n", dataMiB, valueKiB)
	fmt.Printf("keep-data restart (etcd_ctl):          %s\n", keep.Round(time.Millisecond))
	fmt.Printf("wipe + rejoin + full resync (old way): %s\n", resync.Round(time.Millisecond))
	fmt.Printf("ratio: %.1fx\n", resync.Seconds()/keep.Seconds())
	return nil
}

func newBench(work, bin, name string, octet byte) (*bench, error) {
	l := &localcluster.Layout{Dir: filepath.Join(work, name), Deployment: "bench-" + name, Base: net.IPv4(127, 0, octet, 1), RequireSSL: true, PeerRequireSSL: true,
		Tweak: func(_ int, p *config.Properties) { p.QuotaBackendBytes = 8 << 30 }}
	b := &bench{bin: bin, layout: l, procs: map[int]*localcluster.Process{}}
	for i := 0; i < 3; i++ {
		if err := l.WriteConfig(i, 3); err != nil {
			return nil, err
		}
	}
	for i := 0; i < 3; i++ {
		if err := b.start(i); err != nil {
			return nil, err
		}
	}
	for i := 0; i < 3; i++ {
		if err := b.waitReady(i); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) config(i int) *config.Config {
	c, err := config.Load(b.layout.ConfigPath(i))
	if err != nil {
		panic(err)
	}
	return c
}

func (b *bench) start(i int) error {
	p, err := b.layout.StartMember(b.bin, i, false)
	if err != nil {
		return err
	}
	b.procs[i] = p
	return nil
}

func (b *bench) waitReady(i int) error {
	return status.WaitReady(context.Background(), b.config(i), 10*time.Minute, func(string) {})
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		_ = p.Stop(30 * time.Second)
	}
}

func (b *bench) client() (*clientv3.Client, error) {
	var eps []string
	for i := 0; i < 3; i++ {
		eps = append(eps, b.config(i).Self().ClientURL)
	}
	return etcdclient.New(b.config(0), eps, 5*time.Second)
}

func (b *bench) roll(rate int, kill bool) (loadgen.Result, string, error) {
	cli, err := b.client()
	if err != nil {
		return loadgen.Result{}, "", err
	}
	defer cli.Close()
	w := loadgen.Start(cli, "/roll", rate, 5*time.Second)
	time.Sleep(2 * time.Second)
	var times []string
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		if kill {
			b.procs[i].Kill()
		} else if err := b.procs[i].Stop(60 * time.Second); err != nil {
			return loadgen.Result{}, "", err
		}
		if err := b.start(i); err != nil {
			return loadgen.Result{}, "", err
		}
		if err := b.waitReady(i); err != nil {
			return loadgen.Result{}, "", err
		}
		times = append(times, time.Since(t0).Round(100*time.Millisecond).String())
		time.Sleep(2 * time.Second)
	}
	res := w.Stop()
	missing, err := loadgen.Missing(context.Background(), cli, "/roll", res.Acked)
	if err != nil {
		return res, "", err
	}
	if len(missing) > 0 {
		return res, "", fmt.Errorf("%d acknowledged writes lost", len(missing))
	}
	return res, strings.Join(times, " "), nil
}

func (b *bench) restartTimes(dataMiB, valueKiB int) (keep, resync time.Duration, err error) {
	cli, err := b.client()
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	value := strings.Repeat("x", valueKiB<<10)
	n := dataMiB << 10 / valueKiB
	const writers = 16
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := w; i < n; i += writers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("/data/%08d", i), value)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("filling data: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			return 0, 0, err
		}
	}
	const victim = 2
	if err := b.procs[victim].Stop(60 * time.Second); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := b.start(victim); err != nil {
		return 0, 0, err
	}
	if err := b.waitReady(victim); err != nil {
		return 0, 0, err
	}
	keep = time.Since(t0)

	if err := b.procs[victim].Stop(60 * time.Second); err != nil {
		return 0, 0, err
	}
	dir := b.config(victim).Paths.DataDir
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return 0, 0, err
		}
	}
	t0 = time.Now()
	if err := b.start(victim); err != nil {
		return 0, 0, err
	}
	if err := b.waitReady(victim); err != nil {
		return 0, 0, err
	}
	return keep, time.Since(t0), nil
}
