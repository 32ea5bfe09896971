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

// TestChoosePrune covers the bound on moved-aside copies.
func TestChoosePrune(t *testing.T) {
	at := func(min int, name string) MovedAsideCopy {
		return MovedAsideCopy{Path: name, Time: time.Date(2026, 11, 22, 10, min, 0, 0, time.UTC)}
	}
	a, b, c, d := at(1, "a"), at(2, "b"), at(3, "c"), at(4, "d")
	for name, tc := range map[string]struct {
		copies []MovedAsideCopy
		max    int
		want   []MovedAsideCopy
	}{
		"none":                      {max: 3},
		"under the bound":           {copies: []MovedAsideCopy{a, b}, max: 3},
		"at the bound":              {copies: []MovedAsideCopy{a, b, c}, max: 3},
		"one over, oldest goes":     {copies: []MovedAsideCopy{c, a, d, b}, max: 3, want: []MovedAsideCopy{a}},
		"bound 1 keeps the newest":  {copies: []MovedAsideCopy{b, d, a, c}, max: 1, want: []MovedAsideCopy{a, b, c}},
		"same second: by name":      {copies: []MovedAsideCopy{at(1, "y"), at(1, "x")}, max: 1, want: []MovedAsideCopy{at(1, "x")}},
		"bound 0 never deletes all": {copies: []MovedAsideCopy{a, b}, max: 0},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, ChoosePrune(tc.copies, tc.max))
		})
	}
}

func TestListAndPruneMovedAside(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "etcd")
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var dests []string
	for i := 0; i < 4; i++ {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "member", "wal", "0.wal"), make([]byte, 100*(i+1)), 0o600))
		// Two moves in the same second get distinct names.
		dest, err := MoveAside(dir, "rolled-back-learner", t0.Add(time.Duration(i/2)*time.Second))
		require.NoError(t, err)
		dests = append(dests, dest)
	}
	require.Equal(t, filepath.Join(parent, "etcd.moved-aside.20261122T100000Z.rolled-back-learner-2"), dests[1])
	// Not ours: never listed, never pruned.
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "etcd.moved-aside.by-hand"), 0o700))
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "etcd-backup"), 0o700))

	copies, err := ListMovedAside(dir)
	require.NoError(t, err)
	require.Len(t, copies, 4)
	require.Equal(t, int64(100), copies[0].Bytes)
	require.Equal(t, "rolled-back-learner", copies[0].Reason)

	pruned, err := PruneMovedAside(dir, 2)
	require.NoError(t, err)
	require.Equal(t, []string{dests[0], dests[1]}, []string{pruned[0].Path, pruned[1].Path})
	for _, p := range dests[:2] {
		require.NoDirExists(t, p)
	}
	for _, p := range append(dests[2:], filepath.Join(parent, "etcd.moved-aside.by-hand"), filepath.Join(parent, "etcd-backup"), dir) {
		require.DirExists(t, p)
	}
}
