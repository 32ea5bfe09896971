package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// TestMemberWithDivergedDataIsRefused makes one member's data diverge from its peers' (a value rewritten in its
// stopped db file, as a bad disk would) and restarts it: etcd's InitialCorruptCheck, which
// etcd.enable_corruption_checks turns on, compares its hash with the peers' at its revision and refuses to
// start. etcd_ctl exits with the error and leaves the data where it is; the other members keep serving.
func TestMemberWithDivergedDataIsRefused(t *testing.T) {
	c := newCluster(t, 3, withMaintenance(0, "0", func(m *config.MaintenanceProperties) { m.Enabled = false }))
	c.startAll(3)
	good := strings.Repeat("A", 64)
	c.put(0, "/corrupt/k", good)
	require.Equal(t, good, c.get(2, "/corrupt/k"))
	c.stop(2)

	db := filepath.Join(c.config(2).Paths.DataDir, "member", "snap", "db")
	changed := 0
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		require.NotNil(t, b, "etcd's key bucket")
		var keys, vals [][]byte
		require.NoError(t, b.ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(good)) {
				keys = append(keys, append([]byte(nil), k...))
				vals = append(vals, bytes.ReplaceAll(v, []byte(good), []byte(strings.Repeat("B", 64))))
			}
			return nil
		}))
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
			changed++
		}
		return nil
	}))
	require.NoError(t, bdb.Close())
	require.Equal(t, 1, changed, "one revision of /corrupt/k rewritten")

	c.start(2)
	select {
	case <-c.procs[2].Done():
	case <-time.After(3 * time.Minute):
		t.Fatal("the member with diverged data kept running")
	}
	require.Error(t, c.procs[2].ExitErr(), "etcd_ctl must exit with an error")
	delete(c.procs, 2)
	require.NotEmpty(t, c.logLines(2, "found data inconsistency with peers"))
	_, err = os.Stat(db)
	require.NoError(t, err, "the diverged data stays where it is for the operator to inspect")
	moved, _ := filepath.Glob(filepath.Join(filepath.Dir(c.config(2).Paths.DataDir), "*moved-aside*"))
	require.Empty(t, moved, "nothing is moved aside on a guess")
	r := c.status(0)
	require.True(t, r.Healthy)
	require.Equal(t, good, c.get(0, "/corrupt/k"))
}
