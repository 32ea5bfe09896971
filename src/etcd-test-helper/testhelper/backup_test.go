package testhelper_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// TestSnapshotAndRestoreThroughTheHelper takes a snapshot of a real one-member cluster through the helper, writes
// after it, stops the member, restores the snapshot through the helper and starts the member again: the key
// written before the snapshot is back and the one written after it is gone. A bad file name and a restore
// without --force over the member's data are refused.
func TestSnapshotAndRestoreThroughTheHelper(t *testing.T) {
	bin, l := oneMemberLayout(t, false)
	start := func() *localcluster.Process {
		p, err := l.StartMember(bin, 0, false)
		require.NoError(t, err)
		t.Cleanup(p.Kill)
		return p
	}
	p := start()
	cfg := baseConfig(t, t.TempDir())
	cfg.EtcdCtl, cfg.EtcdCtlConfig = bin, l.ConfigPath(0)
	h := startHelper(t, cfg, &http.Client{Timeout: 2 * time.Minute})

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + l.Address(0) + ":4001"}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	put := func(k string) {
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := cli.Put(ctx, k, "v")
			return err == nil
		}, time.Minute, time.Second, "put %s", k)
	}
	put("/before")

	var defrag testhelper.CommandResult
	require.Equal(t, http.StatusOK, h.do(t, "POST", "/etcd/defrag", nil, &defrag), "etcd_ctl defrag through the helper")

	var snap testhelper.SnapshotResult
	require.Equal(t, http.StatusOK, h.do(t, "POST", "/etcd/snapshot", nil, &snap))
	require.True(t, strings.HasPrefix(snap.Snapshot.Name, "etcd-snapshot-"), snap.Snapshot.Name)
	require.NotEmpty(t, snap.Snapshot.Data)
	var meta struct {
		Revision int64  `json:"revision"`
		SHA256   string `json:"sha256"`
	}
	require.NoError(t, json.Unmarshal(snap.Snapshot.Metadata, &meta))
	require.Positive(t, meta.Revision)
	put("/after")
	require.NoError(t, p.Stop(30*time.Second))

	bad := testhelper.RestoreRequest{Snapshot: snap.Snapshot, Force: true}
	bad.Snapshot.Name = "../escape.db"
	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/etcd/restore", bad, nil))
	require.Equal(t, http.StatusInternalServerError, h.do(t, "POST", "/etcd/restore", testhelper.RestoreRequest{Snapshot: snap.Snapshot}, nil),
		"without force, etcd_ctl refuses to replace the member's data")
	var res testhelper.CommandResult
	require.Equal(t, http.StatusOK, h.do(t, "POST", "/etcd/restore", testhelper.RestoreRequest{Snapshot: snap.Snapshot, Force: true}, &res))

	start()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/before")
		return err == nil && len(resp.Kvs) == 1
	}, time.Minute, time.Second, "the key written before the snapshot is back")
	resp, err := cli.Get(context.Background(), "/after")
	require.NoError(t, err)
	require.Empty(t, resp.Kvs, "the key written after the snapshot is not")
}
