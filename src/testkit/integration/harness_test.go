package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/loadgen"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// etcdCtl builds etcd_ctl once per test binary. A build failure fails the test; it never skips.
func etcdCtl(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcd_ctl-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "etcd_ctl")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/etcd-release/etcd-release/src/etcd_ctl").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build etcd_ctl: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// cluster is a set of real etcd_ctl members on loopback.
type cluster struct {
	t      testing.TB
	bin    string
	layout *localcluster.Layout
	size   int // desired members (what BOSH would list in the link)
	procs  map[int]*localcluster.Process
}

type option func(*localcluster.Layout)

func withTLS(client, peer bool) option {
	return func(l *localcluster.Layout) { l.RequireSSL, l.PeerRequireSSL = client, peer }
}

// newCluster lays out a cluster of size members on a random 127.x.y.0/24 so tests never collide.
func newCluster(t testing.TB, size int, opts ...option) *cluster {
	base := net.IPv4(127, byte(20+rand.IntN(200)), byte(1+rand.IntN(250)), 1)
	l := &localcluster.Layout{Dir: t.TempDir(), Deployment: fmt.Sprintf("it-%d", rand.IntN(1<<30)), Base: base, MaxMembers: 5}
	for _, o := range opts {
		o(l)
	}
	c := &cluster{t: t, bin: etcdCtl(t), layout: l, size: size, procs: map[int]*localcluster.Process{}}
	for i := 0; i < size; i++ {
		require.NoError(t, l.WriteConfig(i, size))
	}
	t.Cleanup(func() {
		for i, p := range c.procs {
			p.Kill()
			if t.Failed() {
				c.dumpLog(i)
			}
		}
	})
	return c
}

func (c *cluster) dumpLog(i int) {
	b, _ := os.ReadFile(c.layout.LogPath(i))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	c.t.Logf("---- member %d log (last lines) ----\n%s", i, strings.Join(lines, "\n"))
}

func (c *cluster) config(i int) *config.Config {
	cfg, err := config.Load(c.layout.ConfigPath(i))
	require.NoError(c.t, err)
	return cfg
}

// start starts member i (it must not be running).
func (c *cluster) start(i int) {
	_, running := c.procs[i]
	require.False(c.t, running, "member %d already running", i)
	started := time.Now()
	p, err := c.layout.StartMember(c.bin, i, false)
	require.NoError(c.t, err)
	c.procs[i] = p
	// Like monit, return once the new process has written its pidfile (or given up), so that a wait-ready right
	// after sees this start and not the previous one.
	pid := c.layout.Paths(i).PidFile()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(pid); err == nil && !st.ModTime().Before(started) {
			return
		}
		select {
		case <-p.Done():
			return
		default:
		}
	}
}

// waitReady runs the real `etcd_ctl wait-ready` for member i.
func (c *cluster) waitReady(i int, timeout time.Duration) {
	out, err := c.ctl(i, "wait-ready", "--timeout", timeout.String())
	if err != nil {
		c.dumpLog(i)
	}
	require.NoError(c.t, err, "wait-ready member %d: %s", i, out)
}

func (c *cluster) ctl(i int, args ...string) (string, error) {
	args = append(args, "--config", c.layout.ConfigPath(i))
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	return string(out), err
}

// stop sends SIGTERM to member i and requires a clean exit within the grace period.
func (c *cluster) stop(i int) {
	p := c.procs[i]
	require.NotNil(c.t, p)
	require.NoError(c.t, p.Stop(45*time.Second), "member %d", i)
	require.NoError(c.t, p.ExitErr(), "member %d exit status after SIGTERM", i)
	delete(c.procs, i)
}

func (c *cluster) kill(i int) {
	c.procs[i].Kill()
	delete(c.procs, i)
}

// status runs `etcd_ctl status --json` through member i and fails the test if it gives no report.
func (c *cluster) status(i int) *status.Report {
	r, err := c.tryStatus(i)
	require.NoError(c.t, err, "status of member %d", i)
	return r
}

// tryStatus runs `etcd_ctl status --json` through member i. It returns why there is no report instead of failing,
// for waits that poll members which may restart between two calls.
func (c *cluster) tryStatus(i int) (*status.Report, error) {
	cmd := exec.Command(c.bin, "status", "--json", "--config", c.layout.ConfigPath(i))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// An unhealthy cluster or a conflict exits 2 with a report on stdout; only a missing report is an error.
	out, runErr := cmd.Output()
	var r status.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("etcd_ctl status printed no report (exit: %v): %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return &r, nil
}

// client returns a client for the given members (all running members when none are given).
func (c *cluster) client(members ...int) *clientv3.Client {
	if len(members) == 0 {
		for i := range c.procs {
			members = append(members, i)
		}
	}
	var eps []string
	for _, i := range members {
		eps = append(eps, c.config(i).Self().ClientURL)
	}
	cli, err := etcdclient.New(c.config(members[0]), eps, 5*time.Second)
	require.NoError(c.t, err)
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *cluster) put(member int, key, value string) {
	require.NoError(c.t, c.tryPut(member, key, value))
}

func (c *cluster) tryPut(member int, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.client(member).Put(ctx, key, value)
	return err
}

func (c *cluster) get(member int, key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.client(member).Get(ctx, key)
	require.NoError(c.t, err)
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// requireHealthy asserts one cluster ID, one leader, `voters` voting members and no learners, seen from
// every running member.
func (c *cluster) requireHealthy(voters int) string {
	var clusterID string
	for i := range c.procs {
		r := c.status(i)
		require.True(c.t, r.Healthy, "member %d sees an unhealthy cluster: %+v", i, r)
		if clusterID == "" {
			clusterID = r.ClusterID
		}
		require.Equal(c.t, clusterID, r.ClusterID, "member %d is in another cluster", i)
		require.Len(c.t, r.Members, voters, "member %d: %+v", i, r.Members)
		leaders := 0
		for _, m := range r.Members {
			require.False(c.t, m.Learner, "learner left behind: %+v", m)
			if m.Leader {
				leaders++
			}
		}
		require.Equal(c.t, 1, leaders)
	}
	return clusterID
}

// memberIDs maps member names to IDs as seen from member i.
func (c *cluster) memberIDs(i int) map[string]string {
	ids := map[string]string{}
	for _, m := range c.status(i).Members {
		ids[m.Name] = m.ID
	}
	return ids
}

func (c *cluster) leader() int {
	for i := range c.procs {
		for _, m := range c.status(i).Members {
			if m.Leader {
				for j := range c.procs {
					if config.MemberName("etcd", j) == m.Name {
						return j
					}
				}
			}
		}
	}
	c.t.Fatal("no leader")
	return -1
}

// resize rewrites every laid-out member's config for a desired cluster of n members (what a BOSH deploy that
// changes the instance count renders); running members read it on their next start.
func (c *cluster) resize(n int) {
	c.size = n
	for i := 0; i < n; i++ {
		require.NoError(c.t, c.layout.WriteConfig(i, n))
	}
}

// drain runs the real `etcd_ctl drain` as the BOSH agent would.
func (c *cluster) drain(i int, kind string, nextDisk int) (string, error) {
	cmd := exec.Command(c.bin, "drain", kind, "hash_unchanged", "--config", c.layout.ConfigPath(i))
	cmd.Env = append(os.Environ(), fmt.Sprintf(`BOSH_JOB_NEXT_STATE={"persistent_disk":%d}`, nextDisk), `BOSH_JOB_STATE={"persistent_disk":1024}`)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out) + string(ee.Stderr), err
	}
	return string(out), err
}

// wipe deletes everything in member i's data dir, as an operator's `rm -rf /var/vcap/store/etcd/*` does.
func (c *cluster) wipe(i int) {
	dir := c.config(i).Paths.DataDir
	entries, err := os.ReadDir(dir)
	require.NoError(c.t, err)
	for _, e := range entries {
		require.NoError(c.t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

// writer starts a continuous writer through every running member.
func (c *cluster) writer(prefix string) *loadgen.Writer {
	return loadgen.Start(c.client(), prefix, 50, 5*time.Second)
}

// requireNoLoss reads back every acknowledged write through a linearizable read.
func (c *cluster) requireNoLoss(prefix string, res loadgen.Result) {
	c.t.Logf("writer: %s; errors: %v", res, res.Errors)
	require.NotEmpty(c.t, res.Acked)
	missing, err := loadgen.Missing(context.Background(), c.client(), prefix, res.Acked)
	require.NoError(c.t, err)
	require.Empty(c.t, missing, "acknowledged writes lost")
}

// startAll starts members 0..n-1 and waits until each is ready.
func (c *cluster) startAll(n int) {
	for i := 0; i < n; i++ {
		c.start(i)
	}
	for i := 0; i < n; i++ {
		c.waitReady(i, 3*time.Minute)
	}
}
