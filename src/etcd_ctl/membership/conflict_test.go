package membership

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// A conflict recorded by an earlier start is not reported while a newer start (its pidfile) has yet to decide.
func TestConflictRecordOfAnEarlierStartIsStale(t *testing.T) {
	dir := t.TempDir()
	c := &config.Config{Paths: config.Paths{RunDir: dir, DataDir: filepath.Join(dir, "data")}}
	got, err := ReadConflict(c)
	require.NoError(t, err)
	require.Empty(t, got)

	require.NoError(t, WriteConflict(c, "two clusters hold client writes"))
	got, err = ReadConflict(c)
	require.NoError(t, err)
	require.Equal(t, "two clusters hold client writes", got, "no start running: the record stands")

	old := time.Now().Add(-time.Minute)
	require.NoError(t, os.Chtimes(ConflictFile(c), old, old))
	require.NoError(t, os.WriteFile(c.Paths.PidFile(), []byte("123\n"), 0o644))
	got, err = ReadConflict(c)
	require.NoError(t, err)
	require.Empty(t, got, "a newer start has not decided yet")

	require.NoError(t, WriteConflict(c, "still two clusters"))
	got, err = ReadConflict(c)
	require.NoError(t, err)
	require.Equal(t, "still two clusters", got, "the running start recorded it again")
}
