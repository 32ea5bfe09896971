// Command local-cluster runs a 3-member TLS etcd cluster of real etcd_ctl processes on loopback addresses
// (127.0.10.1-3, the job's real ports) for developers: `up`, `status`, `down`. State lives in .cache/local-cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

type options struct {
	dir     string
	members int
	bin     string
}

func main() {
	o := &options{}
	root := &cobra.Command{Use: "local-cluster", Short: "Run a local TLS etcd cluster of etcd_ctl processes on loopback", SilenceUsage: true}
	root.PersistentFlags().StringVar(&o.dir, "dir", ".cache/local-cluster", "state directory")
	root.PersistentFlags().IntVar(&o.members, "members", 3, "number of members")
	root.PersistentFlags().StringVar(&o.bin, "etcd-ctl", "bin/etcd_ctl", "etcd_ctl binary")
	root.AddCommand(
		&cobra.Command{Use: "up", Short: "Start (or restart) the cluster and wait until every member is ready", RunE: func(*cobra.Command, []string) error { return up(o) }},
		&cobra.Command{Use: "down", Short: "Stop every member gracefully (data is kept)", RunE: func(*cobra.Command, []string) error { return down(o) }},
		&cobra.Command{Use: "status", Short: "Show the cluster", RunE: func(*cobra.Command, []string) error { return run(o, "status") }},
	)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "local-cluster:", err)
		os.Exit(1)
	}
}

func layout(o *options) *localcluster.Layout {
	abs, _ := filepath.Abs(o.dir)
	return &localcluster.Layout{Dir: abs, Deployment: "local", Base: net.IPv4(127, 0, 10, 1), RequireSSL: true, PeerRequireSSL: true, MaxMembers: 5}
}

func up(o *options) error {
	l := layout(o)
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: run `make build` first", o.bin)
	}
	if _, err := os.Stat(l.ConfigPath(0)); errors.Is(err, os.ErrNotExist) {
		for i := 0; i < o.members; i++ {
			if err := l.WriteConfig(i, o.members); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(l.Dir, "vars.yml"), l.Certs.VarsYAML(), 0o600); err != nil {
			return err
		}
	}
	for i := 0; i < o.members; i++ {
		if pid, ok := runningPid(l, i); ok {
			fmt.Printf("member %d already running (pid %d)\n", i, pid)
			continue
		}
		p, err := l.StartMember(bin, i, true)
		if err != nil {
			return err
		}
		fmt.Printf("started member %d (pid %d, %s, log %s)\n", i, p.Pid(), l.Address(i), l.LogPath(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := 0; i < o.members; i++ {
		c, err := config.Load(l.ConfigPath(i))
		if err != nil {
			return err
		}
		if err := status.WaitReady(ctx, c, 3*time.Minute, func(msg string) { fmt.Printf("member %d: %s\n", i, msg) }); err != nil {
			return fmt.Errorf("member %d: %w (log: %s)", i, err, l.LogPath(i))
		}
	}
	if err := run(o, "status"); err != nil {
		return err
	}
	c, _ := config.Load(l.ConfigPath(0))
	var eps []string
	for i := 0; i < o.members; i++ {
		cc, _ := config.Load(l.ConfigPath(i))
		eps = append(eps, cc.Self().ClientURL)
	}
	tls := filepath.Join(c.Paths.TLSDir())
	fmt.Printf(`
The cluster is up. Talk to it with:
  %s status --config %s
or with any etcd v3 client:
  endpoints: %s
  --cacert %s/ca.crt --cert %s/client.crt --key %s/client.key
BOSH vars for these certificates: %s
Stop it with: scripts/local-cluster down
`, o.bin, l.ConfigPath(0), strings.Join(eps, ","), tls, tls, tls, filepath.Join(l.Dir, "vars.yml"))
	return nil
}

func runningPid(l *localcluster.Layout, i int) (int, bool) {
	b, err := os.ReadFile(l.Paths(i).PidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

func down(o *options) error {
	l := layout(o)
	for i := 0; i < o.members; i++ {
		pid, ok := runningPid(l, i)
		if !ok {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		gone := retry.Poll(context.Background(), retry.Options{Interval: 200 * time.Millisecond, Timeout: 45 * time.Second},
			func(context.Context) error {
				if syscall.Kill(pid, 0) == nil {
					return errors.New("still running")
				}
				return nil
			})
		if gone != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			fmt.Printf("member %d did not stop in time and was killed\n", i)
		} else {
			fmt.Printf("member %d stopped\n", i)
		}
	}
	return nil
}

func run(o *options, verb string) error {
	cmd := exec.Command(o.bin, verb, "--config", layout(o).ConfigPath(0))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}
