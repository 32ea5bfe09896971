package deployer

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/state"
)

func TestExpiredOrphans(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	disks := []state.OrphanDisk{
		{CID: "fresh", OrphanedAt: now.Add(-time.Hour)},
		{CID: "four-days", OrphanedAt: now.Add(-4 * 24 * time.Hour)},
		{CID: "six-days", OrphanedAt: now.Add(-6 * 24 * time.Hour)},
		{CID: "exactly", OrphanedAt: now.Add(-DefaultOrphanRetention)},
	}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		want      []string
	}{
		{"default retention deletes only what is older", DefaultOrphanRetention, []string{"six-days"}},
		{"one day", 24 * time.Hour, []string{"four-days", "six-days", "exactly"}},
		{"zero keeps everything", 0, nil},
		{"negative keeps everything", -time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, expiredOrphans(disks, now, tc.retention))
		})
	}
}

func TestCheckAttach(t *testing.T) {
	for _, tc := range []struct {
		name string
		inst *state.Instance
		err  string
	}{
		{"no such instance", nil, "instance 'etcd/3' doesn't exist in deployment 'etcd'"},
		{"started", &state.Instance{Group: "etcd", ID: "u1", State: "started"}, "must be stopped before a disk is attached: run `bosh -d etcd stop etcd/u1`"},
		{"stopped", &state.Instance{Group: "etcd", ID: "u1", State: "stopped"}, ""},
		{"stopped --hard", &state.Instance{Group: "etcd", ID: "u1", State: "detached"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAttach("etcd", "etcd/3", tc.inst)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// TestCleanupOrphans runs the retention cleanup on a real state dir: the expired disk's directory and record go,
// the fresh one stays with its data, and the deletion is in the event log.
func TestCleanupOrphans(t *testing.T) {
	dir := t.TempDir()
	store, err := state.Open(dir)
	require.NoError(t, err)
	d, err := New(Config{StateDir: dir, Bridge: "lbtest0", BridgeCIDR: netip.MustParsePrefix("10.249.0.1/24"), VMPrefix: "lbtest"}, store)
	require.NoError(t, err)
	now := time.Now().UTC()
	for cid, age := range map[string]time.Duration{"disk-old": 6 * 24 * time.Hour, "disk-new": time.Hour} {
		require.NoError(t, os.MkdirAll(filepath.Join(d.DiskDir(cid), "etcd"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(d.DiskDir(cid), "etcd", "member"), []byte(cid), 0o600))
		require.NoError(t, store.PutOrphanDisk(state.OrphanDisk{CID: cid, Size: 64, Deployment: "etcd", Instance: "etcd/x", OrphanedAt: now.Add(-age)}))
	}
	require.NoError(t, d.CleanupOrphans(now, DefaultOrphanRetention))
	_, err = os.Stat(d.DiskDir("disk-old"))
	require.True(t, os.IsNotExist(err))
	b, err := os.ReadFile(filepath.Join(d.DiskDir("disk-new"), "etcd", "member"))
	require.NoError(t, err)
	require.Equal(t, "disk-new", string(b))
	left, err := store.OrphanDisks()
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "disk-new", left[0].CID)
	events, err := store.Events()
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, "delete", events[0].Action)
	require.Equal(t, "disk-old", events[0].ObjectName)
	require.Equal(t, "scheduler", events[0].User)
}
