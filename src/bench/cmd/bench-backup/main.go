// Command bench-backup prints the figures of the backup issue: the time of a verified snapshot of a large
// keyspace against copying the member's db file on the same disk in the same moment, put throughput while a
// snapshot is taken against without, and the time to restore a 3-member cluster from the snapshot
// (etcdutl's restore on each member, then the three members started until the cluster serves a linearizable
// read).
//
// The server is a real embedded etcd (the same embed package etcd_ctl runs). Both ways etcd_ctl takes a
// snapshot are measured through backup.Take: the scheduler's (copied out of the embedded server in process,
// sealed by a child etcd_ctl under SCHED_IDLE) and `etcd_ctl snapshot`'s (etcd's Snapshot RPC).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/testkit/freeport"
)

func main() {
	sizeMiB := flag.Int("size-mib", 1024, "keyspace to fill, MiB of values")
	dir := flag.String("dir", "", "work dir (default: a temp dir, removed afterwards)")
	putSeconds := flag.Duration("put-window", 10*time.Second, "how long the baseline put measurement runs")
	flag.Parse()
	if err := run(*sizeMiB, *dir, *putSeconds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-backup:", err)
		os.Exit(1)
	}
}

func run(sizeMiB int, dir string, putWindow time.Duration) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-backup-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	e, cli, ep, err := startMember(filepath.Join(dir, "source"), "default", nil, "", "new")
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	closeSource := func() { closeOnce.Do(func() { cli.Close(); e.Close() }) }
	defer closeSource()
	start := time.Now()
	if err := fill(cli, sizeMiB); err != nil {
		return err
	}
	fmt.Printf("filled %d MiB of values in %s\n", sizeMiB, time.Since(start).Round(time.Millisecond))

	dbPath := filepath.Join(dir, "source", "member", "snap", "db")
	seal, err := childSealer(dir)
	if err != nil {
		return err
	}
	var meta *backup.Meta
	for _, w := range []way{
		{"scheduled snapshot (copied out of the embedded server in process, sealed by an idle child etcd_ctl)",
			backup.Options{Source: backup.LocalSource{Server: e.Server}, Seal: seal.Seal}},
		{"etcd_ctl snapshot (etcd's Snapshot RPC, sealed in the receiving process)", backup.Options{}},
	} {
		w.o.Dir, w.o.KeepCount = filepath.Join(dir, "backups"), 3
		if meta, err = measureWay(w, cli, ep, dbPath, filepath.Join(dir, "db-copy"), putWindow); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if _, err := backup.Verify(meta.Path()); err != nil {
		return err
	}
	fmt.Printf("verification alone (trailer sha256 re-read + full open of the database, re-run now): %s\n", time.Since(t0).Round(time.Millisecond))
	closeSource()
	return restoreThree(dir, meta)
}

// way is one way of taking a snapshot, as Take's options.
type way struct {
	name string
	o    backup.Options
}

// measureWay times three snapshots on the idle member, each right after a copy of the db file (the speed
// target compares the two in the same moment: this disk's speed varies by more than 4× from minute to
// minute), then one snapshot under the put load, against the put throughput of putWindow just before and
// just after it (their mean: this machine's throughput drifts too).
func measureWay(w way, cli *clientv3.Client, ep, dbPath, copyPath string, putWindow time.Duration) (*backup.Meta, error) {
	fmt.Println(w.name + ":")
	var ratios []float64
	var m *backup.Meta
	for round := 1; round <= 3; round++ {
		copyTime, dbSize, err := copyFile(dbPath, copyPath)
		os.Remove(copyPath)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if m, err = backup.Take(context.Background(), cli, ep, w.o); err != nil {
			return nil, err
		}
		snapTime := time.Since(t0)
		ratios = append(ratios, copyTime.Seconds()/snapTime.Seconds())
		fmt.Printf("  idle, round %d: copying the %d MiB db file (read, write, fsync) %s (%.0f MiB/s); verified snapshot %s (%.0f MiB/s): %.2f×\n",
			round, dbSize>>20, copyTime.Round(time.Millisecond), mibps(dbSize, copyTime), snapTime.Round(time.Millisecond), mibps(m.Size, snapTime), ratios[round-1])
	}
	sort.Float64s(ratios)
	fmt.Printf("  speed vs copying the db file, median of 3: %.2f× (target ≥ 0.5×)\n", ratios[1])
	var snapTime time.Duration
	before := measurePuts(cli, putWindow, nil)
	during := measurePuts(cli, 0, func() error {
		t0 := time.Now()
		var err error
		m, err = backup.Take(context.Background(), cli, ep, w.o)
		snapTime = time.Since(t0)
		return err
	})
	if m == nil {
		return nil, fmt.Errorf("the %s failed under load", w.name)
	}
	after := measurePuts(cli, putWindow, nil)
	base := (before + after) / 2
	fmt.Printf("  under the put load (16 writers, 256-byte values): snapshot %s (revision %d); puts %.0f ops/s before, %.0f during, %.0f after: %.2f× (target ≥ 0.9×)\n",
		snapTime.Round(time.Millisecond), m.Revision, before, during, after, during/base)
	return m, nil
}

// childSealer builds etcd_ctl into dir so that the scheduled way seals in a child exactly as on a VM.
func childSealer(dir string) (backup.ChildSealer, error) {
	bin := filepath.Join(dir, "etcd_ctl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/etcd-release/etcd-release/src/etcd_ctl").CombinedOutput(); err != nil {
		return backup.ChildSealer{}, fmt.Errorf("building etcd_ctl for the seal child: %v\n%s", err, out)
	}
	return backup.ChildSealer{Path: bin, Args: []string{backup.SealCommand}}, nil
}

// restoreThree restores the snapshot as three members (what each VM does, timed one after another) and starts
// them until the cluster answers a linearizable read.
func restoreThree(dir string, meta *backup.Meta) error {
	var peers []url.URL
	var parts []string
	for i := 0; i < 3; i++ {
		u, err := localURL()
		if err != nil {
			return err
		}
		peers = append(peers, u)
		parts = append(parts, fmt.Sprintf("m%d=%s", i, u.String()))
	}
	initial := strings.Join(parts, ",")
	t0 := time.Now()
	var slowest time.Duration
	for i := 0; i < 3; i++ {
		t := time.Now()
		err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{SnapshotPath: meta.Path(), Name: fmt.Sprintf("m%d", i),
			OutputDataDir: filepath.Join(dir, fmt.Sprintf("restored-%d", i)), PeerURLs: []string{peers[i].String()},
			InitialCluster: initial, InitialClusterToken: "bench-restore", RevisionBump: 1_000_000_000, MarkCompacted: true})
		if err != nil {
			return err
		}
		slowest = max(slowest, time.Since(t))
	}
	restoreAll := time.Since(t0)
	t1 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	clis := make([]*clientv3.Client, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, cli, _, err := startMember(filepath.Join(dir, fmt.Sprintf("restored-%d", i)), fmt.Sprintf("m%d", i), &peers[i], initial, "existing")
			errs[i], clis[i] = err, cli
			if err == nil {
				defer e.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				for ctx.Err() == nil {
					if _, err := cli.Get(ctx, "/bench/0"); err == nil {
						break
					}
				}
				errs[i] = ctx.Err()
				cli.Close()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("restore of 3 members: etcdutl restore %s per member (slowest; %s for all three in a row), then start to a serving cluster %s; total on VMs restoring in parallel ≈ %s\n",
		slowest.Round(time.Millisecond), restoreAll.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), (slowest + time.Since(t1)).Round(time.Millisecond))
	return nil
}

func startMember(dataDir, name string, peer *url.URL, initial, state string) (*embed.Etcd, *clientv3.Client, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir, cfg.Name, cfg.LogLevel = dataDir, name, "error"
	cfg.QuotaBackendBytes = 8 << 30
	cu, err := localURL()
	if err != nil {
		return nil, nil, "", err
	}
	if peer == nil {
		pu, err := localURL()
		if err != nil {
			return nil, nil, "", err
		}
		peer, initial = &pu, name+"="+pu.String()
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster, cfg.ClusterState = initial, state
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(5 * time.Minute):
		e.Close()
		return nil, nil, "", fmt.Errorf("%s did not become ready", name)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), MaxCallSendMsgSize: 4 << 20})
	return e, cli, cu.String(), err
}

func localURL() (url.URL, error) {
	a, err := freeport.Addr()
	return url.URL{Scheme: "http", Host: a}, err
}

// fill writes sizeMiB of 64 KiB values with 8 writers.
func fill(cli *clientv3.Client, sizeMiB int) error {
	const valueSize = 64 << 10
	n := sizeMiB * (1 << 20) / valueSize
	value := strings.Repeat("x", valueSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := cli.Put(context.Background(), fmt.Sprintf("/bench/%d", i), value); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// measurePuts runs 16 writers of small values for window, or for as long as during runs; it returns ops/s.
func measurePuts(cli *clientv3.Client, window time.Duration, during func() error) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	var ops atomic.Int64
	var wg sync.WaitGroup
	value := strings.Repeat("v", 256)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := cli.Put(ctx, fmt.Sprintf("/puts/%d/%d", w, i%1000), value); err == nil {
					ops.Add(1)
				}
			}
		}()
	}
	t0 := time.Now()
	if during != nil {
		if err := during(); err != nil {
			fmt.Fprintln(os.Stderr, "during:", err)
		}
	} else {
		time.Sleep(window)
	}
	elapsed := time.Since(t0)
	n := ops.Load()
	cancel()
	wg.Wait()
	return float64(n) / elapsed.Seconds()
}

func copyFile(from, to string) (time.Duration, int64, error) {
	t0 := time.Now()
	in, err := os.Open(from)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	n, err := io.Copy(out, in)
	if err != nil {
		return 0, 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, 0, err
	}
	return time.Since(t0), n, nil
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
