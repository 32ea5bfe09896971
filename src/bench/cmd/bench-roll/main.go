// Command bench-roll measures what membership handling costs clients and operators, with real etcd_ctl processes
// on loopback:
//
//  1. a rolling restart of a 3-member TLS cluster under a steady writer (50 writes/s through all endpoints), once
//     with etcd_ctl's graceful stop (leadership moved away first) and once with SIGKILL (no transfer, as the old
//     CF etcdfab and etcd-manager stopped etcd): longest write stall, failed writes, restart times;
//  2. one member's restart with N MiB of data: keep-data restart (what etcd_ctl does) vs wipe + automatic rejoin
//     with a full resync (what the old release did on every stop), for one or more sizes side by side
//     (`-data-mib 64,1024 -skip-roll`), with the snapshot bytes the rejoining member received.
//
// It prints figures and asserts nothing.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	dataMiB := flag.String("data-mib", "1024", "data written before the restart-time comparison, in MiB; a comma-separated list compares several sizes side by side (a fresh cluster each)")
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

func run(dataMiBs string, valueKiB, rate int, skipData bool) error {
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
	var sizes []int
	for _, f := range strings.Split(dataMiBs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-data-mib: %q is not a positive number of MiB", f)
		}
		sizes = append(sizes, n)
	}
	var rows []string
	for k, mib := range sizes {
		r, err := dataRow(work, bin, k, mib, valueKiB)
		if err != nil {
			return fmt.Errorf("%d MiB: %w", mib, err)
		}
		rows = append(rows, r)
	}
	fmt.Printf("\none member restart, %d KiB values (3-member TLS cluster; time until wait-ready succeeds)\n", valueKiB)
	fmt.Printf("%10s %12s %14s %8s %18s %16s\n", "data", "keep-data", "wipe-rejoin", "ratio", "snapshot received", "data dir after")
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

// dataRow measures one data size on a fresh cluster and removes it afterwards (disk space).
func dataRow(work, bin string, k, mib, valueKiB int) (string, error) {
	name := fmt.Sprintf("data%d", mib)
	b, err := newBench(work, bin, name, byte(50+k))
	if err != nil {
		return "", err
	}
	defer func() {
		b.stopAll()
		if !*keepWork {
			os.RemoveAll(filepath.Join(work, name))
		}
	}()
	keep, resync, err := b.restartTimes(mib, valueKiB)
	if err != nil {
		return "", err
	}
	const victim = 2
	snap := b.snapshotBytes(victim)
	dirBytes := dirSize(b.config(victim).Paths.DataDir)
	return fmt.Sprintf("%7d MiB %12s %14s %7.1fx %14.1f MiB %12.1f MiB", mib, keep.Round(time.Millisecond), resync.Round(time.Millisecond),
		resync.Seconds()/keep.Seconds(), float64(snap)/(1<<20), float64(dirBytes)/(1<<20)), nil
}

// snapshotBytes is the size of the last snapshot member i received, from etcd's "received and saved database
// snapshot" log line.
func (b *bench) snapshotBytes(i int) int64 {
	data, _ := os.ReadFile(b.layout.LogPath(i))
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `"received and saved database snapshot"`) {
			continue
		}
		var e struct {
			Bytes int64 `json:"incoming-snapshot-size-bytes"`
		}
		if json.Unmarshal([]byte(line), &e) == nil {
			n = e.Bytes
		}
	}
	return n
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
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
