package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// largeMiB is the keyspace of the large-keyspace tests: ETCD_RELEASE_LARGE_MIB, 256 by default so that CI runs
// them in bounded time. Issue 19 needs the wiped member to get a snapshot whose index is more than etcd's apply
// gap (5000 entries) ahead of nothing: the leader keeps only its last 5000 raft entries (compacting every 100),
// so any keyspace of more than about 5100 entries qualifies. 256 MiB in 16 KiB values is 16384 entries; the
// issue's reproduction used 1024 MiB (65536).
func largeMiB(t *testing.T) int {
	s := os.Getenv("ETCD_RELEASE_LARGE_MIB")
	if s == "" {
		return 256
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "ETCD_RELEASE_LARGE_MIB")
	return n
}

func withLargeQuota() option {
	return func(l *localcluster.Layout) {
		l.Tweak = func(_ int, p *config.Properties) { p.QuotaBackendBytes = 8 << 30 }
	}
}

// fill writes mib MiB in 16 KiB values under prefix, with 16 concurrent writers.
func fill(t *testing.T, cli *clientv3.Client, prefix string, mib int) {
	value := strings.Repeat("x", 16<<10)
	n := mib << 10 / 16
	const writers = 16
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := w; i < n; i += writers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("%s/%08d", prefix, i), value)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		require.NoError(t, <-errs, "filling %d MiB", mib)
	}
}

// requireCleanRejoin checks member i's log and disk after a wipe-rejoin: no rollback, nothing moved aside, and
// etcd's publish retry bounded in the log.
func (c *cluster) requireCleanRejoin(i int) {
	b, err := os.ReadFile(c.layout.LogPath(i))
	require.NoError(c.t, err)
	log := string(b)
	require.NotContains(c.t, log, "rolling back the join")
	moved, _ := filepath.Glob(c.config(i).Paths.DataDir + ".moved-aside.*")
	require.Empty(c.t, moved, "a rejoin moved data aside")
	publishFailures := strings.Count(log, "failed to publish local member to cluster through raft")
	c.t.Logf("member %d: %d failed-publish lines, %d log bytes", i, publishFailures, len(b))
	require.LessOrEqual(c.t, publishFailures, 10*etcdserver.EtcdLogBurst, "etcd's publish retry is not bounded in the log")
}

// TestWipedMemberOfALargeKeyspaceRejoins is issue 19: a member wiped with `rm -rf /var/vcap/store/etcd/*` rejoins
// a cluster whose keyspace is larger than etcd's apply gap and becomes a voting member again, without a give-up
// and retry loop; first with no client writing (the case that never converged: etcd refused its own publish
// after the snapshot until something wrote), then under a writer whose every acknowledged write is read back.
func TestWipedMemberOfALargeKeyspaceRejoins(t *testing.T) {
	mib := largeMiB(t)
	c := newCluster(t, 3, withTLS(true, true), withLargeQuota())
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	t0 := time.Now()
	fill(t, c.client(0, 1, 2), "/large", mib)
	t.Logf("filled %d MiB in %s", mib, time.Since(t0).Round(time.Millisecond))
	const victim = 2

	// Whether etcd refuses the publish after the snapshot depends on a race inside etcd: the member's first
	// publish proposal is forwarded to the leader while the snapshot is prepared; if it commits before the
	// leader's snapshot index, the member never sees its own proposal apply, times out, and from then on its
	// request gate refuses every retry. So the rejoin runs a few times; every round must end clean, and a round
	// that met the refusal must show that the nudge ran.
	rounds := 5
	if s := os.Getenv("ETCD_RELEASE_LARGE_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "ETCD_RELEASE_LARGE_ROUNDS")
		rounds = n
	}
	for r := 1; r <= rounds; r++ {
		// Not subtests: the harness fails through the parent test's t.
		func() {
			t.Logf("no writes, round %d", r)
			c.stop(victim)
			c.wipe(victim)
			require.NoError(t, os.Truncate(c.layout.LogPath(victim), 0))
			t0 := time.Now()
			c.start(victim)
			c.waitReady(victim, 3*time.Minute)
			b, _ := os.ReadFile(c.layout.LogPath(victim))
			refused := strings.Contains(string(b), "etcdserver: too many requests")
			nudged := strings.Contains(string(b), "wrote one entry to the cluster so that this member's etcd accepts its own publish")
			t.Logf("wipe-rejoin of %d MiB without writes: %s (etcd refused its publish: %t, nudged: %t)", mib, time.Since(t0).Round(time.Millisecond), refused, nudged)
			c.requireHealthy(3)
			c.requireCleanRejoin(victim)
			if refused {
				require.True(t, nudged, "etcd refused the publish with too many requests, and etcd_ctl did not write the entry that unsticks it")
			}
		}()
	}

	func() {
		t.Log("under a writer")
		w := c.writer("/large-writer")
		time.Sleep(time.Second)
		c.stop(victim)
		c.wipe(victim)
		require.NoError(t, os.Truncate(c.layout.LogPath(victim), 0))
		t0 := time.Now()
		c.start(victim)
		c.waitReady(victim, 3*time.Minute)
		t.Logf("wipe-rejoin of %d MiB under a writer: %s", mib, time.Since(t0).Round(time.Millisecond))
		time.Sleep(time.Second)
		res := w.Stop()
		c.requireHealthy(3)
		c.requireCleanRejoin(victim)
		c.requireNoLoss("/large-writer", res)
		// The data written before is all there, read through the rejoined member.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.client(victim).Get(ctx, "/large/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		require.Equal(t, int64(mib<<10/16), resp.Count)
	}()

	// And the keep-data restart of the same member: same member ID, no resync.
	id := c.memberIDs(0)[c.config(victim).SelfName()]
	c.stop(victim)
	t0 = time.Now()
	c.start(victim)
	c.waitReady(victim, 2*time.Minute)
	t.Logf("keep-data restart with %d MiB: %s", mib, time.Since(t0).Round(time.Millisecond))
	require.Equal(t, id, c.memberIDs(0)[c.config(victim).SelfName()], "a restart with data keeps the member ID")
	c.requireHealthy(3)
}
