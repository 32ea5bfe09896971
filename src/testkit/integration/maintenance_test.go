package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

const mib = 1 << 20

// withMaintenance sets a small quota and a fast maintenance loop on every member.
func withMaintenance(quota int64, retention string, tweak func(m *config.MaintenanceProperties)) option {
	return func(l *localcluster.Layout) {
		l.Tweak = func(_ int, p *config.Properties) {
			p.QuotaBackendBytes = quota
			p.AutoCompactionMode, p.AutoCompactionRetention = config.CompactionPeriodic, retention
			p.Maintenance.CheckIntervalInSeconds = 2
			if tweak != nil {
				tweak(&p.Maintenance)
			}
		}
	}
}

// churn overwrites keys keys with values of size bytes through cli as fast as one put at a time allows, until
// ctx ends; it counts acknowledged and failed puts and keeps the distinct errors.
type churn struct {
	acked, failed, bytes atomic.Int64
	mu                   sync.Mutex
	errs                 map[string]int
	last                 map[string]string // key → last acknowledged value's tag
	// failedTag is the tag of the last failed put: etcd applies the put that crosses the quota and still answers
	// it with "database space exceeded" (server/etcdserver/apply/apply.go, quotaApplierV3.Put), so it may be the value read.
	failedTag string
	// maybe holds, per key, the tag of a put after its last acknowledged one whose outcome is unknown (failed, or
	// cancelled in flight when the churn stopped): it may have been applied.
	maybe map[string]string
	done  chan struct{}
}

// readBackOK reports whether value is what key may hold: its last acknowledged put or a later unknown one.
func (ch *churn) readBackOK(key, value string) bool {
	return strings.HasPrefix(value, ch.last[key]) || (ch.maybe[key] != "" && strings.HasPrefix(value, ch.maybe[key]))
}

// startChurn runs the churn in the background, at most rate puts per second (0: as fast as one put at a time
// goes), until ctx ends (or, with stopOnFailure, the first failed put).
func startChurn(ctx context.Context, cli *clientv3.Client, prefix string, keys, size, rate int, stopOnFailure bool) *churn {
	ch := &churn{errs: map[string]int{}, last: map[string]string{}, maybe: map[string]string{}, done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		ch.run(ctx, cli, prefix, keys, size, rate, stopOnFailure)
	}()
	return ch
}

func (ch *churn) run(ctx context.Context, cli *clientv3.Client, prefix string, keys, size, rate int, stopOnFailure bool) {
	pad := strings.Repeat("x", size)
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for n := 0; ctx.Err() == nil; n++ {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
		key := fmt.Sprintf("%s/%d", prefix, n%keys)
		tag := fmt.Sprintf("%d|", n)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.Put(pctx, key, tag+pad)
		cancel()
		if err != nil {
			ch.mu.Lock()
			ch.maybe[key] = tag
			ch.mu.Unlock()
			if ctx.Err() != nil {
				break
			}
			ch.failed.Add(1)
			ch.mu.Lock()
			ch.errs[err.Error()]++
			ch.failedTag = tag
			ch.mu.Unlock()
			if stopOnFailure {
				break
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ch.acked.Add(1)
		ch.bytes.Add(int64(size))
		ch.mu.Lock()
		ch.last[key] = tag
		delete(ch.maybe, key)
		ch.mu.Unlock()
	}
}

// logLines returns member i's log lines containing s.
func (c *cluster) logLines(i int, s string) []string {
	b, _ := os.ReadFile(c.layout.LogPath(i))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func (c *cluster) logLinesAll(n int, s string) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, c.logLines(i, s)...)
	}
	return out
}

func alarms(t *testing.T, cli *clientv3.Client) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.AlarmList(ctx)
	require.NoError(t, err)
	var out []string
	for _, a := range resp.Alarms {
		out = append(out, fmt.Sprintf("%x:%s", a.MemberID, a.Alarm))
	}
	return out
}

// sampleSizes logs every member's db size and in-use size every interval until ctx ends and returns the largest
// db size seen.
func (c *cluster) sampleSizes(ctx context.Context, n int, interval time.Duration) func() int64 {
	var maxDB atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r := c.status(0)
			var line []string
			for _, m := range r.Members {
				if m.DBSize > maxDB.Load() {
					maxDB.Store(m.DBSize)
				}
				line = append(line, fmt.Sprintf("%s db %.1f MiB in use %.1f MiB", m.Name, float64(m.DBSize)/mib, float64(m.DBSizeInUse)/mib))
			}
			c.t.Logf("sizes: %s", strings.Join(line, "; "))
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	return func() int64 { <-done; return maxDB.Load() }
}

// TestChurnAgainstASmallQuotaNeverRaisesNospace overwrites 20 keys of 64 KiB (1.25 MiB of live data) against a
// 32 MiB quota until several times the quota has been written. Automatic compaction (periodic, 2 s) and the
// maintenance loop's defragmentation keep every member's db file far from the quota: not a single put fails.
func TestChurnAgainstASmallQuotaNeverRaisesNospace(t *testing.T) {
	c := newCluster(t, 3, withMaintenance(32*mib, "2s", func(m *config.MaintenanceProperties) { m.DefragMinDBSizeBytes = 8 * mib }))
	c.startAll(3)
	cli := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	wait := c.sampleSizes(ctx, 3, 5*time.Second)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	// 40 puts/s × 64 KiB = 2.5 MiB/s: a compaction every 2 s keeps a few seconds of history, well under the quota.
	ch := startChurn(wctx, cli, "/churn", 20, 64<<10, 40, false)
	// Stop once 4× the quota has been written (or at the timeout).
	for ctx.Err() == nil && ch.bytes.Load() < 4*32*mib {
		time.Sleep(time.Second)
	}
	wcancel()
	<-ch.done
	cancel()
	maxDB := wait()
	t.Logf("churn: %d puts acknowledged (%.0f MiB written), %d failed %v; largest db file %.1f MiB",
		ch.acked.Load(), float64(ch.bytes.Load())/mib, ch.failed.Load(), ch.errs, float64(maxDB)/mib)
	require.GreaterOrEqual(t, ch.bytes.Load(), int64(3*32*mib), "the churn must write several times the quota to mean anything")
	require.Zero(t, ch.failed.Load(), "puts failed: %v", ch.errs)
	require.Empty(t, alarms(t, cli))
	require.Less(t, maxDB, int64(32*mib))
	// Every key reads back with its last acknowledged value (or the put cancelled in flight when the churn stopped).
	for key := range ch.last {
		v := c.get(0, key)
		require.True(t, ch.readBackOK(key, v), "%s holds %.12q, last acknowledged %q, unknown %q", key, v, ch.last[key], ch.maybe[key])
	}
	t.Logf("defragmentations: %d", len(c.logLinesAll(3, `"defragmented member"`)))
}

// TestNospaceIsRecoveredAutomaticallyWhileAWipedMemberRejoins switches automatic compaction off by property and
// overwrites one 100 KiB key until etcd raises the NOSPACE alarm (the reproduction). A member is then
// wiped and restarted (the one-node recovery procedure); it cannot take the membership lock while the alarm is
// raised, so it waits. The coordinator's maintenance loop compacts, defragments the members one at a time and
// disarms the alarm; the wiped member then rejoins, and writes succeed again.
func TestNospaceIsRecoveredAutomaticallyWhileAWipedMemberRejoins(t *testing.T) {
	const quota = 16 * mib
	// Early compaction off, or the loop may compact before the alarm this test wants is raised. The loop's first
	// check comes 45 s after each member started: the alarm is raised within seconds and stays raised until then,
	// so the wiped member reaches its join while the alarm is up (after that first check, checks come every 9 s).
	c := newCluster(t, 3, withMaintenance(quota, "0", func(m *config.MaintenanceProperties) {
		m.CompactNearQuota = false
		m.CheckIntervalInSeconds = 45
	}))
	c.startAll(3)
	cli := c.client(0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ch := startChurn(ctx, cli, "/one-key", 1, 100<<10, 0, true)
	<-ch.done
	t.Logf("%d puts of one 100 KiB key acknowledged before the first failure: %v", ch.acked.Load(), ch.errs)
	require.Equal(t, int64(1), ch.failed.Load())
	require.Contains(t, fmt.Sprint(ch.errs), "database space exceeded")

	c.stop(2)
	c.wipe(2)
	c.start(2)
	require.Eventually(t, func() bool { return len(c.logLines(2, "waiting for the cluster to clear its NOSPACE alarm")) > 0 },
		30*time.Second, 200*time.Millisecond, "the joiner did not wait for the alarm to clear")
	require.NotEmpty(t, alarms(t, cli), "the alarm is still raised while the joiner waits")
	require.Eventually(t, func() bool { return len(alarms(t, cli)) == 0 }, 2*time.Minute, time.Second, "the NOSPACE alarm was never disarmed")
	c.waitReady(2, 3*time.Minute)
	c.requireHealthy(3)

	for _, want := range []string{`"compacted the keyspace"`, `"defragmented member"`, `"disarmed the NOSPACE alarm"`} {
		require.NotEmpty(t, c.logLinesAll(3, want), "no member logged %s", want)
	}
	for _, l := range c.logLinesAll(3, `"defragmented member"`) {
		t.Log(l)
	}
	c.put(2, "/after-recovery", "ok")
	require.Equal(t, "ok", c.get(0, "/after-recovery"))
	// The value read is the last acknowledged put's, or the failed put's (applied although answered NOSPACE); the
	// same through every member.
	tagOf := func(v string) string { return v[:strings.Index(v, "|")+1] }
	got := tagOf(c.get(0, "/one-key/0"))
	require.Contains(t, []string{ch.last["/one-key/0"], ch.failedTag}, got, "the last acknowledged (or the crossing) put reads back")
	require.Equal(t, got, tagOf(c.get(2, "/one-key/0")), "the rejoined member reads the same value")
	r := c.status(0)
	for _, m := range r.Members {
		require.Empty(t, m.Alarms, "%+v", m)
		require.Less(t, m.DBSize, int64(quota*8/10), "%+v", m)
	}
}

// TestClusterWideDefragUnderLoadLosesNoWrite fragments the keyspace (puts, deletes, a compaction) and runs the
// real `etcd_ctl defrag` while a writer and porcupine-recorded clients run: every member is defragmented once,
// one at a time, every acknowledged write reads back and the history is linearizable.
func TestClusterWideDefragUnderLoadLosesNoWrite(t *testing.T) {
	c := newCluster(t, 3, withMaintenance(64*mib, "0", func(m *config.MaintenanceProperties) { m.Enabled = false }))
	c.startAll(3)
	cli := c.client()
	val := strings.Repeat("y", 16<<10)
	for n := 0; n < 1500; n++ {
		_, err := cli.Put(context.Background(), fmt.Sprintf("/filler/%d", n), val)
		require.NoError(t, err)
	}
	_, err := cli.Delete(context.Background(), "/filler/", clientv3.WithPrefix())
	require.NoError(t, err)
	out, err := c.ctl(0, "compact")
	require.NoError(t, err, out)
	t.Log(strings.TrimSpace(out))

	w := c.writer("/defrag-load")
	rec := &linearizability.Recorder{}
	lctx, lstop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		linearizability.Workload(lctx, c.client(), rec, "/lin", 4, 4, 100)
		close(done)
	}()
	time.Sleep(time.Second)
	out, err = c.ctl(1, "defrag")
	t.Log(out)
	require.NoError(t, err, out)
	time.Sleep(time.Second)
	lstop()
	<-done
	res := w.Stop()
	c.requireNoLoss("/defrag-load", res)
	require.Equal(t, 3, strings.Count(out, "(reclaimed "), "every member defragmented once")
	moves := strings.Count(out, "moved leadership away before defragmenting")
	require.GreaterOrEqual(t, moves, 1, "the leader is never defragmented")
	// A leadership transfer makes etcd drop a proposal in flight (on the old leader, or forwarded to it), which
	// the writer sees as one failed write (never applied: the read-back and porcupine still hold). The
	// defragmentation itself must fail nothing.
	require.LessOrEqual(t, res.Failed, moves, "writes failed beyond one per leadership transfer: %v", res.Errors)
	lines := c.logLinesAll(3, `"defragmented member"`)
	require.Empty(t, lines, "the loop is disabled; only the command defragments")
	verdict, err := linearizability.Check(rec.Ops(), time.Minute, "")
	require.NoError(t, err)
	require.Equal(t, linearizability.Linearizable, verdict)
	for _, m := range c.status(0).Members {
		require.Less(t, m.DBSize, int64(8*mib), "%+v", m)
	}
	c.requireHealthy(3)
}
