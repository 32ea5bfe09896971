package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/testkit/loadgen"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// TestBootstrapStoreLost is issue #12's first case: every member stopped, the bootstrap instance's store wiped
// (a lost or replaced persistent disk), then the members started in some order. Every write acknowledged before
// and during the restart must be there afterwards, in the original cluster, and the members that kept their
// disks keep their member IDs.
func TestBootstrapStoreLost(t *testing.T) {
	orders := map[string]func(c *cluster){
		"bootstrap-first": func(c *cluster) {
			c.start(0)
			c.waitReady(0, 2*time.Minute) // it creates a cluster of its own: nothing tells it the others hold data
			c.start(1)
			time.Sleep(3 * time.Second)
			c.start(2)
		},
		"bootstrap-first-and-restarted-before-the-others": func(c *cluster) {
			c.start(0)
			c.waitReady(0, 2*time.Minute)
			c.stop(0) // a monit restart or reboot: it comes back on the cluster it created alone
			c.start(0)
			c.waitReady(0, 2*time.Minute)
			c.start(1)
			c.start(2)
		},
		"bootstrap-last": func(c *cluster) {
			c.start(1)
			c.start(2)
			c.waitReady(1, 2*time.Minute)
			c.waitReady(2, 2*time.Minute)
			c.start(0)
		},
		"all-at-once": func(c *cluster) {
			for i := 0; i < 3; i++ {
				c.start(i)
			}
		},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 3, withTLS(false, false))
			for i := 0; i < 3; i++ {
				c.start(i)
			}
			for i := 0; i < 3; i++ {
				c.waitReady(i, 2*time.Minute)
			}
			before := c.requireHealthy(3)
			ids := c.memberIDs(1)
			w1 := c.writer("/before")
			time.Sleep(3 * time.Second)
			res1 := w1.Stop()
			require.NotEmpty(t, res1.Acked)
			for i := 0; i < 3; i++ {
				c.stop(i)
			}
			c.wipe(0)

			// The writer talks only to the members that kept their data: writes accepted by a cluster the bootstrap
			// instance creates alone would be a second history (a conflict), not a write this test may demand back.
			w2 := loadgen.Start(c.client(1, 2), "/during", 20, 5*time.Second)
			order(c)
			after := c.waitOneCluster(3, 3*time.Minute)
			res2 := w2.Stop()

			require.Equal(t, before, after, "the members holding the data keep their cluster")
			now := c.memberIDs(1)
			for _, n := range []string{config.MemberName("etcd", 1), config.MemberName("etcd", 2)} {
				require.Equal(t, ids[n], now[n], "member %s kept its data and its ID", n)
			}
			require.NotEqual(t, ids[config.MemberName("etcd", 0)], now[config.MemberName("etcd", 0)], "the wiped member rejoined as a new member")
			c.requireNoLoss("/before", res1)
			c.requireNoLoss("/during", res2)
			for i := 1; i < 3; i++ {
				require.Empty(t, movedAside(t, c, i), "member %d must not move its data aside", i)
			}
			if strings.HasPrefix(name, "bootstrap-first") {
				kept := movedAside(t, c, 0)
				require.Len(t, kept, 1, "the cluster the bootstrap instance created alone is kept aside, not deleted")
				require.Contains(t, kept[0], "stepped-down-new-cluster")
				log, err := os.ReadFile(c.layout.LogPath(0))
				require.NoError(t, err)
				require.Contains(t, string(log), "stepping down from a cluster without client writes")
			}
		})
	}
}

// TestTwoInstanceGroupsWholeClusterWipe: etcd.machines across two instance groups gives BOSH two bootstrap
// instances (index 0 of each group). After every store is wiped, the second group's bootstrap instance started
// alone waits, and once the others start at once exactly one member (the first listed machine) creates the
// cluster and everyone else joins it.
func TestTwoInstanceGroupsWholeClusterWipe(t *testing.T) {
	c := newCluster(t, 4, withTLS(false, false))
	groups := [][2]any{{"etcd_z1", 0}, {"etcd_z1", 1}, {"etcd_z2", 0}, {"etcd_z2", 1}}
	var machines []string
	for i := range groups {
		machines = append(machines, c.layout.Address(i))
	}
	for i, g := range groups {
		cfg := c.config(i)
		cfg.Instance.Name, cfg.Instance.Index = g[0].(string), g[1].(int)
		cfg.Instance.Bootstrap = cfg.Instance.Index == 0
		cfg.Link = nil
		cfg.Etcd.Machines = machines
		b, err := localcluster.MarshalConfig(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(c.layout.ConfigPath(i), b, 0o600))
	}
	startAll := func() {
		for i := range groups {
			c.start(i)
		}
	}
	startAll()
	c.waitOneCluster(4, 3*time.Minute)
	for i := range groups {
		c.stop(i)
		c.wipe(i)
	}

	// etcd_z2's bootstrap instance first, alone: it is not the deployment's creator, so it waits (before, it
	// created a second cluster whenever it saw every peer refuse).
	c.start(2)
	time.Sleep(6 * time.Second)
	select {
	case <-c.procs[2].Done():
		t.Fatalf("etcd_z2/0 exited: %v", c.procs[2].ExitErr())
	default:
	}
	entries, err := os.ReadDir(c.config(2).Paths.DataDir)
	require.NoError(t, err)
	require.Empty(t, entries, "etcd_z2/0 must wait for the deployment's creator, not create a cluster")
	for _, i := range []int{0, 1, 3} {
		c.start(i)
	}
	w := loadgen.Start(c.client(0, 1, 2, 3), "/wiped", 20, 5*time.Second)
	c.waitOneCluster(4, 3*time.Minute)
	time.Sleep(2 * time.Second)
	res := w.Stop()
	c.requireNoLoss("/wiped", res)
	for _, i := range []int{1, 2, 3} {
		log, err := os.ReadFile(c.layout.LogPath(i))
		require.NoError(t, err)
		require.NotContains(t, string(log), "decided to create a new cluster", "member %d is not the deployment's creator", i)
	}
}

// waitOneCluster waits until every running member is a voter of one healthy cluster of n voters with one
// leader, and returns its ID.
func (c *cluster) waitOneCluster(n int, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		id, why := c.oneCluster(n)
		if why == "" {
			c.requireHealthy(n)
			return id
		}
		if time.Now().After(deadline) {
			for i := range c.procs {
				c.dumpLog(i)
			}
			c.t.Fatalf("no single cluster of %d voters after %s: %s", n, timeout, why)
		}
		time.Sleep(time.Second)
	}
}

func (c *cluster) oneCluster(n int) (string, string) {
	var id string
	for i := range c.procs {
		// One call per member: a member stepping down may restart between two calls.
		r, err := c.tryStatus(i)
		if err != nil {
			return "", fmt.Sprintf("member %d: %v", i, err)
		}
		if id == "" {
			id = r.ClusterID
		}
		if r.ClusterID != id || len(r.Members) != n || !r.Healthy {
			return "", "member " + r.Endpoint + " in cluster " + r.ClusterID
		}
		for _, m := range r.Members {
			if m.Learner {
				return "", "learner " + m.Name
			}
		}
	}
	return id, ""
}

// movedAside lists member i's moved-aside data dirs.
func movedAside(t *testing.T, c *cluster, i int) []string {
	dir := c.config(i).Paths.DataDir
	matches, err := filepath.Glob(dir + ".moved-aside.*")
	require.NoError(t, err)
	return matches
}

// TestBothSidesWithClientWritesIsAConflict: the bootstrap instance, its store lost, creates a cluster alone and
// clients write to it; the members holding the old data then start. Nothing is discarded: they refuse to start,
// naming both sides and the recovery command, `status` and `wait-ready` show the conflict, and the recovery
// command (here: keep the old cluster) ends in one cluster with the old data.
func TestBothSidesWithClientWritesIsAConflict(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	w := c.writer("/old")
	time.Sleep(2 * time.Second)
	res := w.Stop()
	for i := 0; i < 3; i++ {
		c.stop(i)
	}
	c.wipe(0)
	c.start(0)
	c.waitReady(0, 2*time.Minute)
	c.put(0, "/new-side", "written to the re-created cluster")

	c.start(1)
	select {
	case <-c.procs[1].Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("member 1 kept running although both sides hold client writes")
	}
	require.Error(t, c.procs[1].ExitErr())
	delete(c.procs, 1)
	log, err := os.ReadFile(c.layout.LogPath(1))
	require.NoError(t, err)
	dataDir := c.config(1).Paths.DataDir
	for _, want := range []string{"two clusters of this deployment hold client writes", "etcd-1 (cluster ", c.layout.Address(0) + " (cluster ",
		"monit stop etcd && mv " + dataDir + " " + dataDir + ".moved-aside.manual && monit start etcd"} {
		require.Contains(t, string(log), want)
	}
	require.Empty(t, movedAside(t, c, 1), "nothing is moved aside in a conflict")
	out, err := c.ctl(1, "status")
	require.Error(t, err)
	require.Contains(t, out, "CONFLICT: two clusters of this deployment hold client writes")
	t0 := time.Now()
	out, err = c.ctl(1, "wait-ready", "--timeout", "2m")
	require.Error(t, err)
	require.Contains(t, out, "two clusters of this deployment hold client writes")
	require.Less(t, time.Since(t0), 30*time.Second, "wait-ready reports the conflict instead of waiting it out")

	// The operator keeps the old cluster: the re-created one's data goes aside on member 0.
	c.stop(0)
	dir0 := c.config(0).Paths.DataDir
	require.NoError(t, os.Rename(dir0, dir0+".moved-aside.manual"))
	c.start(1)
	c.start(2)
	c.waitReady(1, 2*time.Minute)
	c.start(0)
	c.waitOneCluster(3, 3*time.Minute)
	c.requireNoLoss("/old", res)
	require.Equal(t, "", c.get(0, "/new-side"))
	out, err = c.ctl(1, "status")
	require.NoError(t, err, out)
	require.NotContains(t, out, "CONFLICT")
}

// TestClusterOfAnEarlierReleaseKeepsWorking: a cluster as the previous release leaves it — identity files
// without a creation nonce, no /etcd-release/cluster record — restarts with its data and member IDs, and a
// wiped member joins it.
func TestClusterOfAnEarlierReleaseKeepsWorking(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.client().Delete(ctx, membership.ClusterKey)
	require.NoError(t, err)
	before := c.requireHealthy(3)
	ids := c.memberIDs(0)
	w := c.writer("/upgrade")
	for i := 0; i < 3; i++ {
		c.stop(i)
		path := filepath.Join(c.config(i).Paths.DataDir, "etcd_ctl-member.json")
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var rec map[string]any
		require.NoError(t, json.Unmarshal(b, &rec))
		require.NotEmpty(t, rec["creation_nonce"], "this release records the nonce")
		delete(rec, "creation_nonce")
		b, _ = json.Marshal(rec)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		c.start(i)
		c.waitReady(i, 2*time.Minute)
	}
	require.Equal(t, before, c.requireHealthy(3))
	require.Equal(t, ids, c.memberIDs(0), "every member restarted with its data")
	c.stop(1)
	c.wipe(1)
	c.start(1)
	c.waitReady(1, 2*time.Minute)
	require.Equal(t, before, c.requireHealthy(3))
	res := w.Stop()
	c.requireNoLoss("/upgrade", res)
	for i := 0; i < 3; i++ {
		require.Empty(t, movedAside(t, c, i))
	}
}

// TestTwoOfFiveDisksLostCreatorAndAJoinerFirst: the creator's and one other store lost in a five-member cluster,
// both wiped members started first (the creator creates a cluster, the other joins it), then the three members
// holding the data. Both wiped members step down from the new cluster and rejoin the old one.
func TestTwoOfFiveDisksLostCreatorAndAJoinerFirst(t *testing.T) {
	c := newCluster(t, 5, withTLS(false, false))
	for i := 0; i < 5; i++ {
		c.start(i)
	}
	before := c.waitOneCluster(5, 3*time.Minute)
	ids := c.memberIDs(1)
	w := loadgen.Start(c.client(1, 2, 4), "/two-of-five", 20, 5*time.Second)
	time.Sleep(2 * time.Second)
	for i := 0; i < 5; i++ {
		c.stop(i)
	}
	c.wipe(0)
	c.wipe(3)
	c.start(0)
	c.waitReady(0, 2*time.Minute)
	c.start(3)
	c.waitReady(3, 2*time.Minute)
	for _, i := range []int{1, 2, 4} {
		c.start(i)
	}
	after := c.waitOneCluster(5, 4*time.Minute)
	res := w.Stop()
	require.Equal(t, before, after)
	now := c.memberIDs(1)
	for _, i := range []int{1, 2, 4} {
		n := config.MemberName("etcd", i)
		require.Equal(t, ids[n], now[n], "member %s kept its data and its ID", n)
	}
	c.requireNoLoss("/two-of-five", res)
	for _, i := range []int{0, 3} {
		kept := movedAside(t, c, i)
		require.Len(t, kept, 1, "member %d", i)
		require.Contains(t, kept[0], "stepped-down-new-cluster")
	}
}
