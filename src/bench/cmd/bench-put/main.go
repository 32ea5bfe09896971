// Command bench-put compares put throughput and memory of a 1-member etcd_ctl against a plain etcd server of the
// same version started with the same flags (the flags etcd_ctl renders). It prints figures; it asserts nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/cli"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds (targets alternate within each round)")
	dur := flag.Duration("duration", 5*time.Second, "load duration per concurrency level")
	levels := flag.String("concurrency", "1,16,64", "concurrent clients")
	flag.Parse()
	if err := run(*rounds, *dur, *levels); err != nil {
		fmt.Fprintln(os.Stderr, "bench-put:", err)
		os.Exit(1)
	}
}

type sample struct {
	opsPerSec map[int][]float64
	rssKiB    []int
}

func run(rounds int, dur time.Duration, levelsFlag string) error {
	var levels []int
	for _, s := range strings.Split(levelsFlag, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		levels = append(levels, n)
	}
	work, err := os.MkdirTemp("", "bench-put-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins := map[string]string{"etcd_ctl": filepath.Join(work, "etcd_ctl"), "etcd": filepath.Join(work, "etcd")}
	for name, pkg := range map[string]string{"etcd_ctl": "./src/etcd_ctl", "etcd": "./src/bench/cmd/etcd-plain"} {
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
	}
	results := map[string]*sample{"etcd_ctl": {opsPerSec: map[int][]float64{}}, "etcd": {opsPerSec: map[int][]float64{}}}
	for r := 0; r < rounds; r++ {
		order := []string{"etcd", "etcd_ctl"}
		if r%2 == 1 {
			order = []string{"etcd_ctl", "etcd"}
		}
		for _, target := range order {
			if err := measure(work, target, bins, levels, dur, results[target]); err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, target, err)
			}
		}
	}
	fmt.Printf("put throughput, 256-byte values, 1 member, no TLS, median of %d rounds × %s per level\n", rounds, dur)
	fmt.Printf("%-12s %14s %14s %8s\n", "concurrency", "etcd ops/s", "etcd_ctl ops/s", "ratio")
	for _, l := range levels {
		a, b := median(results["etcd"].opsPerSec[l]), median(results["etcd_ctl"].opsPerSec[l])
		fmt.Printf("%-12d %14.0f %14.0f %8.3f\n", l, a, b, b/a)
	}
	ra, rb := medianInt(results["etcd"].rssKiB), medianInt(results["etcd_ctl"].rssKiB)
	fmt.Printf("resident memory after load: etcd %.1f MiB, etcd_ctl %.1f MiB, extra %.1f MiB\n", float64(ra)/1024, float64(rb)/1024, float64(rb-ra)/1024)
	return nil
}

// measure runs one single-member server (target: etcd_ctl, or plain etcd with the flags etcd_ctl would give it)
// without TLS, waits until it answers, records puts per second at every concurrency level and its RSS.
func measure(work, target string, bins map[string]string, levels []int, dur time.Duration, s *sample) error {
	dir, err := os.MkdirTemp(work, target+"-")
	if err != nil {
		return err
	}
	c, cmd, err := serverCommand(dir, target, bins[target])
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer stopServer(cmd)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Self().ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	err = retry.Poll(context.Background(), retry.Options{Interval: 200 * time.Millisecond, Timeout: 60 * time.Second}, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "/warmup", "x")
		return err
	})
	if err != nil {
		return fmt.Errorf("server never answered: %w (log %s)", err, logf.Name())
	}
	for _, n := range levels {
		s.opsPerSec[n] = append(s.opsPerSec[n], putsPerSecond(cli, n, dur))
	}
	s.rssKiB = append(s.rssKiB, rss(cmd.Process.Pid))
	return nil
}

// serverCommand writes a plain-HTTP single-member config under dir and returns it with the command that serves it.
func serverCommand(dir, target, bin string) (*config.Config, *exec.Cmd, error) {
	l := &localcluster.Layout{Dir: dir, Deployment: "bench", Base: net.IPv4(127, 0, 30, 1)}
	if err := l.WriteConfig(0, 1); err != nil {
		return nil, nil, err
	}
	c, err := config.Load(l.ConfigPath(0))
	if err != nil {
		return nil, nil, err
	}
	c.Etcd.RequireSSL, c.Etcd.PeerRequireSSL = false, false
	c.Etcd.ClientIP, c.Etcd.PeerIP = l.Address(0), l.Address(0)
	b, err := localcluster.MarshalConfig(c)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(l.ConfigPath(0), b, 0o600); err != nil {
		return nil, nil, err
	}
	if target == "etcd_ctl" {
		return c, exec.Command(bin, "start", "--config", l.ConfigPath(0)), nil
	}
	plan, err := cli.OfflinePlan(c)
	if err != nil {
		return nil, nil, err
	}
	ecfg, err := etcdserver.BuildConfig(c, plan)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(c.Paths.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	return c, exec.Command(bin, etcdserver.Flags(ecfg)...), nil
}

// stopServer sends SIGTERM and kills the server if it has not exited after 30 s.
func stopServer(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// putsPerSecond runs n writers of 256-byte values for dur and returns the acknowledged puts per second.
func putsPerSecond(cli *clientv3.Client, n int, dur time.Duration) float64 {
	value := strings.Repeat("v", 256)
	var ops atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("/bench/%d/%d", g, i), value)
				cancel()
				if err == nil {
					ops.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ops.Load()) / dur.Seconds()
}

func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianInt(v []int) int {
	s := append([]int(nil), v...)
	sort.Ints(s)
	return s[len(s)/2]
}
