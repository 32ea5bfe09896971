package membership

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHasData(t *testing.T) {
	dir := t.TempDir()
	has, err := HasData(dir)
	require.NoError(t, err)
	require.False(t, has)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700))
	has, err = HasData(dir)
	require.NoError(t, err)
	require.False(t, has, "an empty WAL dir is no member")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member", "wal", "0.wal"), []byte("x"), 0o600))
	has, err = HasData(dir)
	require.NoError(t, err)
	require.True(t, has)
}

func TestIdentityRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id, err := ReadIdentity(dir)
	require.NoError(t, err)
	require.Nil(t, id)
	want := Identity{ClusterID: "c1", MemberID: "m1", Name: "etcd-0", PeerURL: "https://10.0.0.1:7001"}
	require.NoError(t, WriteIdentity(dir, want))
	got, err := ReadIdentity(dir)
	require.NoError(t, err)
	require.Equal(t, want, *got)
	require.NoError(t, os.WriteFile(filepath.Join(dir, identityFile), []byte("{"), 0o600))
	_, err = ReadIdentity(dir)
	require.ErrorContains(t, err, identityFile)
}

func TestMoveAsideKeepsEverything(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "etcd")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member", "wal", "0.wal"), []byte("data"), 0o600))
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	dest, err := MoveAside(dir, "removed-member", now)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(parent, "etcd.moved-aside.20261122T100000Z.removed-member"), dest)
	b, err := os.ReadFile(filepath.Join(dest, "member", "wal", "0.wal"))
	require.NoError(t, err)
	require.Equal(t, "data", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "a fresh, empty data dir takes its place")
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
}
