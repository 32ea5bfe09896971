package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/loadgen"
)

// snapshot runs the real `etcd_ctl snapshot --json` on member i.
func (c *cluster) snapshot(i int, args ...string) backup.Meta {
	out, err := c.ctlStdout(i, append([]string{"snapshot", "--json"}, args...)...)
	require.NoError(c.t, err, "etcd_ctl snapshot: %s", out)
	var m backup.Meta
	require.NoError(c.t, json.Unmarshal([]byte(out), &m), out)
	m.Dir = c.config(i).BackupDir()
	if len(args) == 2 && args[0] == "--dir" {
		m.Dir = args[1]
	}
	return m
}

func (c *cluster) ctlStdout(i int, args ...string) (string, error) {
	cmd := execCtl(c.bin, append(args, "--config", c.layout.ConfigPath(i))...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func dirSnapshot(t *testing.T, dir string) []string {
	var names []string
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			names = append(names, p)
		}
		return err
	}))
	return names
}

// TestSnapshotUnderLoadThenRestoreAThreeMemberCluster is the restore drill: snapshot under a writer (no failed
// write), the refusals that protect data, a restore on every member, every write acknowledged before the
// snapshot present, one new cluster of three voters, and a watch from a pre-restore revision told "compacted".
func TestSnapshotUnderLoadThenRestoreAThreeMemberCluster(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true))
	c.startAll(3)
	oldCluster := c.requireHealthy(3)
	cli := c.client()
	ctx := context.Background()
	first, err := cli.Put(ctx, "/drill/first", "x")
	require.NoError(t, err)

	before := c.writer("/drill/before")
	time.Sleep(3 * time.Second)
	resBefore := before.Stop()
	require.Zero(t, resBefore.Failed)

	during := c.writer("/drill/during")
	m := c.snapshot(1)
	time.Sleep(time.Second)
	resDuring := during.Stop()
	require.Zero(t, resDuring.Failed, "writes during the snapshot: %v", resDuring.Errors)
	t.Logf("snapshot %s: revision %d, %d bytes; writer during it: %s", m.File, m.Revision, m.Size, resDuring)
	require.Equal(t, oldCluster, m.ClusterID)
	require.Len(t, m.Members, 3)
	require.FileExists(t, m.Path())
	require.FileExists(t, backup.MetaPath(m.Path()))

	// The operator copies the snapshot off the VM (here: to a shared dir) to restore it on every member.
	shared := t.TempDir()
	for _, f := range []string{m.Path(), backup.MetaPath(m.Path())} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shared, filepath.Base(f)), b, 0o600))
	}
	snap := filepath.Join(shared, m.File)

	// Refusals: etcd running; a peer serving the cluster; a member's data without --force; a damaged file.
	out, err := c.ctl(0, "restore", "--snapshot", snap, "--force")
	require.Error(t, err)
	require.Contains(t, out, "etcd is running on this VM")
	out, err = c.ctl(0, "recover-from-survivor")
	require.Error(t, err)
	require.Contains(t, out, "etcd is running on this VM")
	c.stop(0)
	out, err = c.ctl(0, "restore", "--snapshot", snap, "--force")
	require.Error(t, err)
	require.Contains(t, out, "answers as a healthy member of cluster "+oldCluster)
	c.stop(1)
	c.stop(2)
	dataBefore := dirSnapshot(t, c.config(0).Paths.DataDir)
	out, err = c.ctl(0, "restore", "--snapshot", snap)
	require.Error(t, err)
	require.Contains(t, out, "the restore would replace it")
	require.Contains(t, out, "re-run with --force")
	good, err := os.ReadFile(snap)
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "truncated.db")
	require.NoError(t, os.WriteFile(bad, good[:len(good)-100], 0o600))
	out, err = c.ctl(0, "restore", "--snapshot", bad, "--force")
	require.Error(t, err)
	require.Contains(t, out, "truncated or not an etcd snapshot")
	tampered := filepath.Join(t.TempDir(), m.File)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0x40
	require.NoError(t, os.WriteFile(tampered, flipped, 0o600))
	out, err = c.ctl(0, "restore", "--snapshot", tampered, "--force")
	require.Error(t, err)
	require.Contains(t, out, "does not match the sha256")
	require.Equal(t, dataBefore, dirSnapshot(t, c.config(0).Paths.DataDir), "a refused restore changes nothing")

	for i := 0; i < 3; i++ {
		out, err := c.ctl(i, "restore", "--snapshot", snap, "--force")
		require.NoError(t, err, "restore on member %d: %s", i, out)
		require.Contains(t, out, "the previous data dir is kept at")
		moved, _ := filepath.Glob(c.config(i).Paths.DataDir + ".moved-aside.*.replaced-by-restore")
		require.Len(t, moved, 1, "the replaced data is kept")
	}
	c.startAll(3)
	newCluster := c.requireHealthy(3)
	require.NotEqual(t, oldCluster, newCluster, "a restore makes a new cluster identity")

	cli = c.client()
	missing, err := loadgen.Missing(ctx, cli, "/drill/before", resBefore.Acked)
	require.NoError(t, err)
	require.Empty(t, missing, "writes acknowledged before the snapshot")
	resp, err := cli.Get(ctx, "/drill/first")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	after, err := cli.Put(ctx, "/drill/after", "y")
	require.NoError(t, err)
	require.Greater(t, after.Header.Revision, m.Revision+1_000_000_000-1, "revisions never go backwards")

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wr := <-cli.Watch(wctx, "/drill/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision))
	require.ErrorIs(t, wr.Err(), rpctypes.ErrCompacted, "a watch from a pre-restore revision: %+v", wr)
	require.Greater(t, wr.CompactRevision, m.Revision)
}

// TestRecoverFromSurvivor: two of three members lose their VMs and disks; the third's data becomes a
// one-member cluster; the others, started wiped, rejoin on their own; every acknowledged write is there.
func TestRecoverFromSurvivor(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true))
	c.startAll(3)
	oldCluster := c.requireHealthy(3)
	w := c.writer("/survivor")
	time.Sleep(3 * time.Second)
	res := w.Stop()
	require.Zero(t, res.Failed)

	c.kill(1)
	c.kill(2)
	c.wipe(1)
	c.wipe(2)
	c.stop(0) // the survivor has no quorum; monit stop etcd

	out, err := c.ctl(1, "recover-from-survivor")
	require.Error(t, err)
	require.Contains(t, out, "has no etcd member data")
	out, err = c.ctl(0, "recover-from-survivor")
	require.NoError(t, err, out)
	require.Contains(t, out, "is now the only member of cluster "+oldCluster)

	c.start(0)
	c.waitReady(0, 2*time.Minute)
	c.requireHealthy(1)
	c.start(1)
	c.waitReady(1, 2*time.Minute)
	c.start(2)
	c.waitReady(2, 2*time.Minute)
	require.Equal(t, oldCluster, c.requireHealthy(3), "one cluster, the survivor's")
	c.requireNoLoss("/survivor", res)
}

// TestScheduledSnapshotsOneMemberAtATime: with etcd.backup.interval_in_minutes 1, the running cluster takes
// one snapshot per minute in all, recorded in the cluster, shown by status; retention keeps keep_count.
func TestScheduledSnapshotsOneMemberAtATime(t *testing.T) {
	c := newCluster(t, 3)
	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.IntervalInMinutes, p.Backup.KeepCount, p.Backup.Gzip = 1, 2, true
	}
	c.resize(3)
	c.startAll(3)
	c.put(0, "/sched/a", "1")
	count := func() (n int, dirs []string) {
		for i := 0; i < 3; i++ {
			b, _ := os.ReadFile(c.layout.LogPath(i))
			if k := strings.Count(string(b), `"took a snapshot"`); k > 0 {
				n += k
				dirs = append(dirs, c.config(i).SelfName())
			}
		}
		return n, dirs
	}
	start := time.Now()
	for {
		if n, _ := count(); n >= 3 || time.Since(start) > 4*time.Minute {
			break
		}
		time.Sleep(5 * time.Second)
	}
	elapsed := time.Since(start)
	n, dirs := count()
	r := c.status(0)
	require.NotNil(t, r.Backup)
	require.NotNil(t, r.Backup.Cluster, "status shows the cluster's last snapshot")
	t.Logf("%d snapshots in %s on %v; cluster's last: %+v", n, elapsed.Round(time.Second), dirs, r.Backup.Cluster)
	require.GreaterOrEqual(t, n, 3, "one per minute")
	// The first check is a minute after start; then the cluster takes one per minute in all, not one per
	// member per minute (which would be 9 by the third minute).
	require.LessOrEqual(t, n, int(elapsed/time.Minute)+1)
	require.Less(t, r.Backup.ClusterAgeSeconds, int64(90))
	for i := 0; i < 3; i++ {
		l, _ := backup.List(c.config(i).BackupDir())
		require.LessOrEqual(t, len(l), 2, "keep_count 2")
		for _, m := range l {
			require.True(t, m.Gzip)
		}
	}
}

func execCtl(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }

// TestEncryptedSnapshotRestoreWithRealEtcdCtl: with etcd.backup.encryption_keys, `etcd_ctl snapshot` writes an
// encrypted file naming its key; `restore` needs that key (listed second after a rotation is fine), refuses a
// tampered copy before changing anything, and brings the data back.
func TestEncryptedSnapshotRestoreWithRealEtcdCtl(t *testing.T) {
	const oldKey, newKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	c := newCluster(t, 1, withTLS(true, true))
	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.EncryptionKeys = []config.BackupKey{{ID: "2026-12", Key: oldKey}}
	}
	c.resize(1)
	c.startAll(1)
	c.put(0, "/enc/a", "secret-value")
	m := c.snapshot(0)
	require.True(t, m.Encrypted)
	require.Equal(t, "2026-12", m.KeyID)
	require.True(t, strings.HasSuffix(m.File, ".db.enc"), m.File)
	b, err := os.ReadFile(m.Path())
	require.NoError(t, err)
	require.NotContains(t, string(b), "secret-value")
	c.put(0, "/enc/after", "x")
	c.stop(0)

	// Rotated: a new key first, the old one still listed.
	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.EncryptionKeys = []config.BackupKey{{ID: "2027-06", Key: newKey}, {ID: "2026-12", Key: oldKey}}
	}
	c.resize(1)
	tampered := filepath.Join(t.TempDir(), m.File)
	require.NoError(t, os.WriteFile(tampered, flipByte(b, len(b)/2), 0o600))
	out, err := c.ctl(0, "restore", "--snapshot", tampered, "--force")
	require.Error(t, err)
	require.Contains(t, out, "does not authenticate")
	moved, _ := filepath.Glob(c.config(0).Paths.DataDir + ".moved-aside.*")
	require.Empty(t, moved, "a refused restore moves nothing aside")

	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.EncryptionKeys = []config.BackupKey{{ID: "2027-06", Key: newKey}}
	}
	c.resize(1)
	out, err = c.ctl(0, "restore", "--snapshot", m.Path(), "--force")
	require.Error(t, err)
	require.Contains(t, out, `encrypted with key "2026-12"`)

	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.EncryptionKeys = []config.BackupKey{{ID: "2027-06", Key: newKey}, {ID: "2026-12", Key: oldKey}}
	}
	c.resize(1)
	out, err = c.ctl(0, "restore", "--snapshot", m.Path(), "--force")
	require.NoError(t, err, out)
	c.startAll(1)
	require.Equal(t, "secret-value", c.get(0, "/enc/a"))
	require.Equal(t, "", c.get(0, "/enc/after"))
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}
