package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
)

func TestUpkeepCountsMaintenanceAndShowsTheNewestSnapshot(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil, filepath.Join(t.TempDir(), "etcd"), time.Now)
	require.NoError(t, err)
	require.Equal(t, maintenance.Hooks{}.OnCompact == nil, m.MaintenanceHooks().OnCompact == nil, "no-op hooks before RegisterUpkeep")
	dir := t.TempDir()
	require.NoError(t, m.RegisterUpkeep(reg, dir, time.Hour))

	got := gather(t, reg)
	require.Equal(t, 3600.0, got["etcd_ctl_backup_interval_seconds{}"])
	require.Equal(t, 0.0, got["etcd_ctl_defragmentations_total{result=ok}"], "counters exist before the first run")
	_, ok := got["etcd_ctl_last_snapshot_timestamp_seconds{}"]
	require.False(t, ok, "no snapshot: no series")

	h := m.MaintenanceHooks()
	h.OnCompact(42, nil)
	h.OnDefrag(maintenance.DefragResult{Before: 100 << 20, After: 40 << 20}, nil)
	h.OnDefrag(maintenance.DefragResult{Before: 100 << 20, After: 100 << 20}, errors.New("deadline exceeded"))
	h.OnDisarm()

	taken := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd-snapshot-20261201T090000Z-rev7.db.json"),
		[]byte(`{"file":"etcd-snapshot-20261201T090000Z-rev7.db","time":"`+taken.Format(time.RFC3339Nano)+`","revision":7}`), 0o600))

	got = gather(t, reg)
	require.Equal(t, 1.0, got["etcd_ctl_compactions_total{result=ok}"])
	require.Equal(t, 1.0, got["etcd_ctl_defragmentations_total{result=ok}"])
	require.Equal(t, 1.0, got["etcd_ctl_defragmentations_total{result=error}"])
	require.Equal(t, float64(60<<20), got["etcd_ctl_defragmentation_reclaimed_bytes_total{}"])
	require.Equal(t, 1.0, got["etcd_ctl_nospace_disarms_total{}"])
	require.Equal(t, float64(taken.Unix()), got["etcd_ctl_last_snapshot_timestamp_seconds{}"])
}
