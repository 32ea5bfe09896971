// Package benchcluster starts and stops the real etcd_ctl clusters the maintenance benchmarks (bench-churn,
// bench-defrag) measure, on loopback.
package benchcluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// Cluster is n running members of layout L.
type Cluster struct {
	L     *localcluster.Layout
	Bin   string
	Procs []*localcluster.Process
}

// Build compiles etcd_ctl into dir.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "etcd_ctl")
	if out, err := exec.Command("go", "build", "-o", bin, "./src/etcd_ctl").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building etcd_ctl: %v\n%s", err, out)
	}
	return bin, nil
}

// Start writes n configs, starts every member and waits until each is ready.
func Start(l *localcluster.Layout, bin string, n int) (*Cluster, error) {
	c := &Cluster{L: l, Bin: bin}
	for i := 0; i < n; i++ {
		if err := l.WriteConfig(i, n); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		p, err := l.StartMember(bin, i, false)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Procs = append(c.Procs, p)
	}
	for i := 0; i < n; i++ {
		if err := status.WaitReady(context.Background(), c.Config(i), 5*time.Minute, func(string) {}); err != nil {
			c.Stop()
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
	}
	return c, nil
}

// Config is member i's configuration.
func (c *Cluster) Config(i int) *config.Config {
	cfg, err := config.Load(c.L.ConfigPath(i))
	if err != nil {
		panic(err)
	}
	return cfg
}

// Endpoints are every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for i := range c.Procs {
		eps = append(eps, c.Config(i).Self().ClientURL)
	}
	return eps
}

// Client reaches every member.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return etcdclient.New(c.Config(0), c.Endpoints(), 5*time.Second)
}

// Ctl runs `etcd_ctl args... --config <member i>` and returns its stdout.
func (c *Cluster) Ctl(i int, args ...string) (string, error) {
	out, err := exec.Command(c.Bin, append(args, "--config", c.L.ConfigPath(i))...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out) + string(ee.Stderr), err
	}
	return string(out), err
}

// Stop stops every member gracefully.
func (c *Cluster) Stop() {
	for _, p := range c.Procs {
		_ = p.Stop(30 * time.Second)
	}
}
