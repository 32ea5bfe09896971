package status

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

// The report lists this member's moved-aside copies with time, reason and size, read from the disk.
func TestReportListsMovedAsideCopies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member", "wal", "0.wal"), make([]byte, 3<<20), 0o600))
	_, err := membership.MoveAside(dir, "removed-member", time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	require.NoError(t, err)

	r := &Report{ClusterID: "c", Healthy: true}
	r.AddMovedAside(dir)
	require.Len(t, r.MovedAside, 1)
	require.Equal(t, int64(3<<20), r.MovedAside[0].Bytes)
	var out bytes.Buffer
	Print(&out, r)
	require.Contains(t, out.String(), "moved-aside copies of this member's data dir: 1")
	require.Contains(t, out.String(), "2026-11-22T10:00:00Z  removed-member  3.0 MiB")

	empty := &Report{ClusterID: "c", Healthy: true}
	empty.AddMovedAside(filepath.Join(t.TempDir(), "etcd"))
	out.Reset()
	Print(&out, empty)
	require.NotContains(t, out.String(), "moved-aside", "nothing to list, nothing printed")
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		require.Equal(t, want, humanBytes(n))
	}
}
